/**
 * Garbage collection in the unthrottled scenario's runs, one fresh process each, as `npm run bench`
 * makes them (bench/scenarios/unthrottled-child.ts: 20,000 messages of warm-up, then 20,000
 * measured after a full GC), with V8's `--trace-gc` on:
 *
 *   node --import tsx bench/burst-gc.ts [--runs 6] [--contender mailpacer-send] [--gc-before-warmup] [--sites] [--v8=<flag>]...
 *
 * For each run it prints msg/s and CPU per message of the measured messages, and the main thread's
 * collections over them: scavenges (count, total pause), mark-compacts (count, pause and
 * incremental marking), and how much each scavenge left in the heap on average (what it promoted
 * or kept); and when the first mark-compact after the warm-up's `send(messages)` returned ended,
 * in ms after it (read against the trace's clock through the forced GC before the measured run).
 * `--gc-before-warmup` makes the child collect garbage before its warm-up too (a diagnostic switch
 * of unthrottled-child.ts, off in `npm run bench`); `--v8` passes a V8 flag to the child
 * (`--v8=--no-allocation-site-pretenuring`).
 *
 * `--sites` also names the allocation sites V8 left marked "tenure" (their objects made in the old
 * generation directly) at the end of each run: the child runs with
 * `--trace-pretenuring-statistics`, which names sites by address only, and waits after its measured
 * messages (BENCH_HOLD=1); gdb attaches to it and prints each site and its literal's boilerplate
 * with V8's `_v8_internal_Print_Object` (bench/lib/print-sites.py). A site is named by its object
 * literal's keys (`{fired, wrapFn, target, type, listener}`), or as an array literal or
 * allocation. Needs gdb (`apt-get install -y gdb`) and leave to attach (root, or ptrace_scope 0).
 * Sites are read by walking V8's list of them from the addresses in the trace; a site the trace
 * left at "tenure" that no walk reached and that moved (a compaction) or died since cannot be
 * printed, and is counted. When a site was marked is read from the trace by its address then: a
 * site that moved since is not dated.
 *
 * Written to find why `send()` with 20,000 messages at once ran in two speeds (docs/benchmarks.md,
 * "Two speeds of send() all at once").
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startSink } from './lib/sink.js';
import { delay } from './lib/timing.js';
import type { ChildFigures, ChildRun } from './scenarios/unthrottled-child.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./scenarios/unthrottled-child.ts', import.meta.url));
const PRINT_SITES = fileURLToPath(new URL('./lib/print-sites.py', import.meta.url));
const N = 20_000;

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '6' },
    contender: { type: 'string', default: 'mailpacer-send' },
    'gc-before-warmup': { type: 'boolean', default: false },
    sites: { type: 'boolean', default: false },
    v8: { type: 'string', multiple: true, default: [] },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${JSON.stringify(values.runs)}`);
if (values.sites && spawnSync('gdb', ['--version']).status !== 0) throw new Error('--sites needs gdb: apt-get install -y gdb');

interface Collections {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  markCompactMs: number;
  incrementalMs: number;
  /** Mean growth of the heap's used size over a scavenge's interval (MB): what it kept, plus what went straight to old space. */
  keptMbPerScavenge: number;
}

/** The trace's lines, the index of the last forced GC (the one before the measured run), and the main thread's line prefix. */
interface Trace {
  lines: string[];
  forced: number;
  isolate: string;
}

/** The child's output, split into lines once; every reading below takes the result. */
function traceOf(lines: string[]): Trace {
  const forced = lines.findLastIndex((line) => / testing[;, ]/.test(line) || line.endsWith(' testing'));
  if (forced < 0) throw new Error('no forced GC ("testing") in the trace: was --trace-gc passed?');
  return { lines, forced, isolate: lines[forced]!.slice(0, lines[forced]!.indexOf(']') + 1) };
}

/** A `--trace-gc` line's time: ms since the isolate started, when the collection ended. */
const gcTime = (line: string) => Number(/\]\s+([\d.]+) ms: /.exec(line)?.[1] ?? Number.NaN);

/** Sums the main thread's collections after the last forced one (the GC before the measured run). */
function collections({ lines, forced, isolate }: Trace): Collections {
  const out: Collections = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0, incrementalMs: 0, keptMbPerScavenge: 0 };
  let previousAfter: number | undefined;
  let kept = 0;
  for (const line of lines.slice(forced + 1)) {
    if (!line.startsWith(isolate)) continue;
    const sizes = /: (Scavenge|Mark-Compact)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, ([\d.]+) \//.exec(line);
    if (!sizes) continue;
    const [, kind, , after, pause] = sizes;
    if (kind === 'Scavenge') {
      out.scavenges++;
      out.scavengeMs += Number(pause);
      if (previousAfter !== undefined) kept += Number(after) - previousAfter;
    } else {
      out.markCompacts++;
      out.markCompactMs += Number(pause);
      out.incrementalMs += Number(/\+ ([\d.]+) ms in/.exec(line)?.[1] ?? 0);
    }
    previousAfter = kind === 'Scavenge' ? Number(after) : undefined;
  }
  out.keptMbPerScavenge = out.scavenges > 1 ? kept / (out.scavenges - 1) : 0;
  return out;
}

/** How long after the warm-up's `send(messages)` returned (`queued`, on the trace's clock) the first mark-compact after it ended (ms). */
function firstMarkCompactAfter(queued: number | undefined, { lines, forced, isolate }: Trace): number | undefined {
  if (queued === undefined) return undefined;
  const first = lines.slice(0, forced).find((line) => line.startsWith(isolate) && line.includes(': Mark-Compact') && gcTime(line) > queued);
  return first === undefined ? undefined : gcTime(first) - queued;
}

/**
 * When the warm-up's `send(messages)` returned, on the trace's clock. The trace counts from the
 * isolate's start, performance.now() from the process's: the forced GC before the measured run,
 * whose end both saw, gives the difference.
 */
function queuedOnTrace(figures: ChildFigures, { lines, forced }: Trace): number | undefined {
  if (figures.warmupQueuedAt === undefined) return undefined;
  return figures.warmupQueuedAt + (gcTime(lines[forced]!) - figures.gcEndedAt);
}

/** A decision the trace shows for a site: when (the trace's ms), at which collection, with how many of its objects made since the collection before alive, and what it became. */
interface Marked {
  at: number;
  collection: 'scavenge' | 'mark-compact';
  found: number;
  created: number;
  to: string;
}

/**
 * The main thread's sites in `--trace-pretenuring-statistics`: every address, newest line first
 * (where print-sites.py starts its walks of V8's list of sites), those whose last line left them
 * at "tenure", and when each was marked. V8 decides right after a collection and `--trace-gc`
 * prints that collection's line after the decisions: a decision's time is the next line's.
 */
function traceSites({ lines, isolate }: Trace): { all: string[]; tenured: string[]; marked: Map<string, Marked>; first: Map<string, Marked> } {
  const last = new Map<string, string>();
  /** Each address's first "=> tenure" from another state, and its first decision of any kind. */
  const marked = new Map<string, Marked>();
  const first = new Map<string, Marked>();
  let undated: Array<{ into: Map<string, Marked>; address: string; found: number; created: number; to: string }> = [];
  for (const line of lines) {
    if (!line.startsWith(isolate)) continue;
    const collection = /: (Scavenge|Mark-Compact)/.exec(line)?.[1];
    if (collection) {
      for (const { into, address, ...counts } of undated) into.set(address, { at: gcTime(line), collection: collection === 'Scavenge' ? 'scavenge' : 'mark-compact', ...counts });
      undated = [];
      continue;
    }
    const site = /pretenuring: AllocationSite\((0x[0-9a-f]+)\): \(created, found, ratio\) \((\d+), (\d+), [\d.]+\) (.+) => (.+)$/.exec(line);
    if (!site) continue;
    const [, address, created, found, rawFrom, rawTo] = site;
    const [from, to] = [rawFrom!.trim(), rawTo!.trim()];
    last.delete(address!);
    last.set(address!, to);
    const counts = { address: address!, created: Number(created), found: Number(found), to };
    if (to === 'tenure' && from !== 'tenure' && !marked.has(address!)) undated.push({ into: marked, ...counts });
    if (from === 'undecided' && to !== 'undecided' && !first.has(address!)) undated.push({ into: first, ...counts });
  }
  const sites = [...last].reverse();
  return { all: sites.map(([address]) => address), tenured: sites.filter(([, decision]) => decision === 'tenure').map(([address]) => address), marked, first };
}

interface PrintedSite {
  address: string;
  site: string | null;
  boilerplate: string | null;
}

/** V8's name of the site whose objects hold the state of an `EventEmitter.once()` listener (Node's `_onceWrap`). */
const ONCE_STATE = '{fired, wrapFn, target, type, listener}';

/** Whether a printed site is still marked "tenure" (V8's kTenure, 3). */
const isTenured = ({ site }: PrintedSite) => /pretenure decision: 3\b/.test(site ?? '');

/** A printed site's name: its object literal's keys, or what kind of array it makes; `undefined` when it is not a site. */
function siteName({ site, boilerplate }: PrintedSite): string | undefined {
  if (!site?.includes('[AllocationSite]')) return undefined;
  const kind = /transition_info: (.*)/.exec(site)?.[1] ?? '';
  if (kind.startsWith('Object literal')) {
    const keys = [...(boilerplate ?? '').matchAll(/^\s+0x[0-9a-f]+: \[String\][^#\n]*#([^:\n]+):/gm)].map((m) => m[1]);
    return `{${keys.join(', ')}}`;
  }
  if (kind.startsWith('Array literal')) return `array literal ${/<JSArray\[\d+\]>/.exec(kind)?.[0] ?? ''}`.trim();
  return `array (${/ElementsKind (\w+)/.exec(kind)?.[1] ?? kind})`;
}

interface Sites {
  /** Names of the sites marked "tenure", sorted. */
  names: string[];
  /** When the trace shows each named site marked (by address: not for a site moved since). */
  marked: Map<string, Marked>;
  /** The `once()` state's site: its first decision in the trace (by address), and whether it ends marked. */
  onceState: { first: Marked | undefined; tenured: boolean } | undefined;
  /** Sites the trace left at "tenure" that could not be printed (moved since). */
  unprinted: number;
  /** Sites on V8's list that were read. */
  walked: number;
}

/** Reads, in the held child, V8's sites marked "tenure" (bench/lib/print-sites.py), and names them. */
function nameSites(pid: number, stdoutFile: string, trace: Trace): Sites {
  const { all, tenured, marked, first } = traceSites(trace);
  const result = `${stdoutFile}.sites.json`;
  const gdb = spawnSync('gdb', ['-p', String(pid), '-batch', '-x', PRINT_SITES], {
    env: { ...process.env, WALK_FROM: all.join(' '), SITES: tenured.join(' '), OUT: stdoutFile, RESULT: result },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (gdb.status !== 0) throw new Error(`gdb failed (${gdb.status ?? gdb.signal}): ${(gdb.stderr || gdb.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  const { walked, sites } = JSON.parse(readFileSync(result, 'utf8')) as { walked: number; sites: PrintedSite[] };
  const names: string[] = [];
  const when = new Map<string, Marked>();
  let onceState: Sites['onceState'];
  for (const site of sites) {
    const name = siteName(site);
    if (name === ONCE_STATE) onceState = { first: first.get(site.address), tenured: isTenured(site) };
    if (name === undefined || !isTenured(site)) continue;
    names.push(name);
    const at = marked.get(site.address);
    if (at) when.set(name, at);
  }
  return { names: names.sort(), marked: when, onceState, unprinted: sites.filter((p) => !p.site?.includes('[AllocationSite]')).length, walked };
}

interface RunResult extends ChildFigures, Collections {
  markCompactAfterQueuedMs: number | undefined;
  /** When the warm-up's `send(messages)` returned, on the trace's clock. */
  queuedAt: number | undefined;
  sites: Sites | undefined;
}

async function once(index: number): Promise<RunResult> {
  const sink = await startSink();
  // The child's stdout (its figures and the trace) goes to a file, which gdb's script reads too.
  const dir = mkdtempSync(join(tmpdir(), 'burst-gc-'));
  const stdoutFile = join(dir, 'stdout');
  const fd = openSync(stdoutFile, 'w');
  try {
    const run: ChildRun = { key: values.contender, host: sink.host, port: sink.port, warmup: N, n: N, tag: `gc${index}`, prefix: `burst-gc-${process.pid}-${index}`, redisPid: undefined };
    const flags = ['--expose-gc', '--trace-gc', ...(values.sites ? ['--trace-pretenuring-statistics'] : []), ...values.v8];
    const child = spawn(process.execPath, [...flags, '--import', 'tsx', CHILD_SCRIPT, JSON.stringify(run)], {
      stdio: ['ignore', fd, 'inherit'],
      env: { ...process.env, ...(values['gc-before-warmup'] && { BENCH_GC_BEFORE_WARMUP: '1' }), ...(values.sites && { BENCH_HOLD: '1' }) },
    });
    let code: number | null | undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', (c) => resolve(void (code = c))));
    const figuresLine = () => readFileSync(stdoutFile, 'utf8').split('\n').find((line) => line.startsWith('{"elapsedMs"'));
    // Held (--sites), the child does not exit: its figures line says it is done.
    while (code === undefined && !(values.sites && figuresLine())) await delay(200);
    const lines = readFileSync(stdoutFile, 'utf8').split('\n');
    const figures = lines.find((line) => line.startsWith('{"elapsedMs"'));
    if (!figures || (code !== undefined && code !== 0)) throw new Error(`run ${index}: the child exited with ${code}`);
    const parsed = JSON.parse(figures) as ChildFigures;
    try {
      const trace = traceOf(lines);
      const queuedAt = queuedOnTrace(parsed, trace);
      return {
        ...parsed,
        ...collections(trace),
        markCompactAfterQueuedMs: firstMarkCompactAfter(queuedAt, trace),
        queuedAt,
        sites: values.sites ? nameSites(child.pid!, stdoutFile, trace) : undefined,
      };
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
    await sink.stop();
  }
}

const extra = [values['gc-before-warmup'] && '--gc-before-warmup', values.sites && '--sites', ...values.v8].filter(Boolean).join(' ') || 'none';
console.log(`${values.contender}, ${runs} run(s), ${N} measured after ${N} of warm-up; extra: ${extra}`);
console.log(
  `run | msg/s | CPU µs/msg | scavenges | scavenge ms | MB kept per scavenge | mark-compacts | mark-compact ms (+ incremental) | first mark-compact after the warm-up's sends were queued (ms)${values.sites ? ` | the once() state's site ${ONCE_STATE}: its first decision (ms after the sends were queued, at which collection, alive of made since the collection before) | sites marked "tenure" at the end` : ''}`,
);
/** Each site's name, and the runs that ended with it marked "tenure". */
const byName = new Map<string, number[]>();
/** When (ms after the warm-up's sends were queued) and with how many alive each site was marked, per run. */
const markedIn = new Map<string, string[]>();
for (let i = 1; i <= runs; i++) {
  const r = await once(i);
  const f = (x: number, d = 0) => x.toFixed(d);
  const literals = r.sites?.names.filter((name) => name.startsWith('{'));
  const onceSite = r.sites?.onceState;
  const first = onceSite?.first;
  const onceColumn = !onceSite
    ? 'not read'
    : `${first && r.queuedAt !== undefined ? `${f(first.at - r.queuedAt)} ms, ${first.collection}, ${first.found} of ${first.created}: ${first.to}` : 'not in the trace (moved)'}${onceSite.tenured ? '; marked "tenure" at the end' : ''}`;
  const sites = r.sites
    ? ` | ${onceColumn} | ${r.sites.names.length} of ${r.sites.walked} read${r.sites.unprinted ? ` (+${r.sites.unprinted} moved, not printed)` : ''}, ${r.sites.names.length - literals!.length} of them arrays; object literals: ${literals!.join(' ')}`
    : '';
  console.log(
    `${i} | ${f(N / (r.elapsedMs / 1000))} | ${f(r.cpuMicros / N)} | ${r.scavenges} | ${f(r.scavengeMs)} | ${f(r.keptMbPerScavenge, 2)} | ${r.markCompacts} | ${f(r.markCompactMs)} (+${f(r.incrementalMs)}) | ${r.markCompactAfterQueuedMs === undefined ? '-' : f(r.markCompactAfterQueuedMs)}${sites}`,
  );
  for (const name of new Set(r.sites?.names)) {
    byName.set(name, [...(byName.get(name) ?? []), i]);
    const at = r.sites!.marked.get(name);
    const when = at && r.queuedAt !== undefined ? `run ${i}: ${f(at.at - r.queuedAt)} ms, ${at.found} of ${at.created}` : `run ${i}: not in the trace (moved)`;
    markedIn.set(name, [...(markedIn.get(name) ?? []), when]);
  }
}
if (values.sites) {
  console.log('\nsite | runs that ended with it marked "tenure" | when each was marked, ms after the warm-up\'s sends were queued, and how many of the objects it made since the collection before were alive');
  for (const [name, inRuns] of [...byName].sort((a, b) => a[1].length - b[1].length || a[0].localeCompare(b[0]))) {
    console.log(`${name} | ${inRuns.join(', ')} | ${inRuns.length < runs ? markedIn.get(name)!.join('; ') : '(every run)'}`);
  }
}
