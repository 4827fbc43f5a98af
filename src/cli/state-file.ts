import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the CLI remembers of a batch when no Redis is configured: a `.mailpacer-<batch-id>.sent`
 * file next to the list, one message id per line, appended right after the server accepted the
 * message (and for messages whose outcome is unknown, which are not resent blindly either). A
 * re-run of the batch reads it and skips those ids. Delete a line to send that message again.
 *
 * The in-memory ledger of `sendBatch` lasts one process; this file is what makes `mailpacer send`
 * resumable across runs. Its limit: a process killed between the server's 250 and the append (a
 * few microseconds) leaves that message unrecorded, and a re-run sends it again.
 */
export interface StateFile {
  readonly path: string;
  /** Ids recorded by earlier runs. */
  readonly done: ReadonlySet<string>;
  /** Records an id (synchronously, so that it is on disk before anything else happens). */
  record(id: string): void;
  close(): void;
}

export function openStateFile(dir: string, batchId: string): StateFile {
  const path = join(dir, `.mailpacer-${fileSafe(batchId)}.sent`);
  let done = new Set<string>();
  try {
    done = new Set(readFileSync(path, 'utf8').split(/\r?\n/).filter((line) => line !== ''));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // Opened at the first record, so that a run that sends nothing leaves no file behind.
  let fd: number | undefined;
  return {
    path,
    done,
    record(id) {
      fd ??= openSync(path, 'a');
      writeSync(fd, `${id.replace(/[\r\n]/g, ' ')}\n`);
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** A batch id as part of a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`. */
export const fileSafe = (batchId: string): string => batchId.replace(/[^A-Za-z0-9._-]/g, '_');
