import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the CLI remembers of a batch when no Redis is configured: a `.mailpacer-<batch-id>.sent`
 * file next to the list, one line per message, appended as soon as its outcome is known: the id
 * alone once the server accepted it, `in-doubt <id>` when its outcome is unknown (the connection
 * was lost after the message went out, or the command quit while it was on the wire). A re-run of
 * the batch reads it: it skips the sent ids, and reports the in-doubt ones without sending them
 * unless told to (`--resend-in-doubt`). The last line of an id wins. Delete an id's lines to send
 * that message again.
 *
 * The in-memory ledger of `sendBatch` lasts one process; this file is what makes `mailpacer send`
 * resumable across runs. Its limit: a process killed (SIGKILL, a power cut) between the server's
 * 250 and the append (a few microseconds) leaves that message unrecorded, and a re-run sends it
 * again.
 */
export interface StateFile {
  readonly path: string;
  /** Ids recorded as sent by earlier runs. */
  readonly sent: ReadonlySet<string>;
  /** Ids recorded as in doubt by earlier runs (and not sent since). */
  readonly inDoubt: ReadonlySet<string>;
  /** Records an outcome (synchronously, so that it is on disk before anything else happens). */
  record(id: string, outcome: StateOutcome): void;
  close(): void;
}

export type StateOutcome = 'sent' | 'in-doubt';

/** An id never holds whitespace (it is a bare address), so this prefix cannot be part of one. */
const IN_DOUBT = 'in-doubt ';

export function openStateFile(dir: string, batchId: string): StateFile {
  const path = stateFilePath(dir, batchId);
  const sent = new Set<string>();
  const inDoubt = new Set<string>();
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    if (line.startsWith(IN_DOUBT)) {
      const id = line.slice(IN_DOUBT.length);
      sent.delete(id);
      inDoubt.add(id);
    } else {
      inDoubt.delete(line);
      sent.add(line);
    }
  }
  // Opened at the first record, so that a run that sends nothing leaves no file behind.
  let fd: number | undefined;
  return {
    path,
    sent,
    inDoubt,
    record(id, outcome) {
      fd ??= openSync(path, 'a');
      writeSync(fd, `${outcome === 'in-doubt' ? IN_DOUBT : ''}${id.replace(/[\r\n]/g, ' ')}\n`);
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

export const stateFilePath = (dir: string, batchId: string): string => join(dir, `.mailpacer-${fileSafe(batchId)}.sent`);

/** A batch id as part of a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`. */
export const fileSafe = (batchId: string): string => batchId.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * Throws (an `ErrnoException`) unless `path` can be written: opened for appending, and removed again
 * when this created it. A file that the run would write only at its end (the failures CSV) or
 * after its first send (the state file) is checked before anything is sent.
 */
export function checkWritable(path: string): void {
  let existed = true;
  try {
    statSync(path);
  } catch {
    existed = false;
  }
  closeSync(openSync(path, 'a'));
  if (!existed) unlinkSync(path);
}
