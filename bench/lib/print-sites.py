# Run by bench/burst-gc.ts --sites inside gdb, attached to a paused Node.js process:
#
#   WALK_FROM="0x... 0x..." SITES="0x... 0x..." OUT=<the process's stdout file> RESULT=<json file> \
#     gdb -p <pid> -batch -x bench/lib/print-sites.py
#
# WALK_FROM: every allocation site address in V8's --trace-pretenuring-statistics; SITES: those the
# trace left marked "tenure". V8 keeps its sites on one list, newest first, linked by `weak_next`,
# which its collections keep up to date: from each address that is still a site the script walks
# that list (to a site already read, or the end), then tries the SITES no walk reached (moved since
# their last trace line, or dead: those fail). It prints each with V8's _v8_internal_Print_Object
# (exported by Node's release build), which writes to the process's stdout, and, for a site that
# names a literal's boilerplate, the boilerplate too (its property names say which literal it is).
# RESULT gets the number of sites read and, per site, the text each call added to OUT. A failed
# call is unwound by gdb.
import json
import os
import re

import gdb

out = os.environ['OUT']
gdb.execute('set unwindonsignal on')


def printed(address):
    """What printing the object at `address` added to the process's stdout, or None when it failed."""
    start = os.path.getsize(out)
    try:
        gdb.execute(f'call (void)_Z25_v8_internal_Print_ObjectPv((void*){address})', to_string=True)
        gdb.execute('call (int)fflush(0)', to_string=True)
    except gdb.error:
        return None
    with open(out, 'rb') as f:
        f.seek(start)
        return f.read().decode('utf-8', 'replace')


def entry(address, site):
    boilerplate = None
    if site and '[AllocationSite]' in site:
        found = re.search(r'boilerplate (0x[0-9a-f]+)', site)
        if found:
            boilerplate = printed(found.group(1))
    return {'address': address, 'site': site, 'boilerplate': boilerplate}


result = []
seen = set()
walked = 0
# The walks: from each address of WALK_FROM that is still a site, along the list until a site
# already read or the list's end. Together they read the list from the newest of them on.
for start in os.environ['WALK_FROM'].split():
    address = start
    while int(address, 16) not in seen and walked < 200_000:
        site = printed(address)
        if not (site and '[AllocationSite]' in site):
            break
        seen.add(int(address, 16))
        walked += 1
        result.append(entry(address, site))
        following = re.search(r'weak_next: (0x[0-9a-f]+) <AllocationSite>', site)
        if not following:
            break
        address = following.group(1)
# The sites the trace left marked "tenure" that the walk did not reach.
for address in os.environ['SITES'].split():
    if int(address, 16) not in seen:
        result.append(entry(address, printed(address)))

with open(os.environ['RESULT'], 'w') as f:
    json.dump({'walked': walked, 'sites': result}, f)
