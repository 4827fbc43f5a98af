/** Small formatters shared by the commands' output. */

/** Where output goes: stdout, or any writable stream (a terminal says so with `isTTY`). */
export type Output = NodeJS.WritableStream & { isTTY?: boolean };

/** `1234567` → `1,234,567` */
export const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/** `950` → `950ms`, `38_400` → `38.4s`, `125_000` → `2m 05s`, `7_380_000` → `2h 03m`, `2 days` → `2d 00h`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '∞';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = ms / 1_000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const pad = (n: number) => String(Math.floor(n)).padStart(2, '0');
  if (s < 3_600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h ${pad((s % 3_600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${pad((s % 86_400) / 3_600)}h`;
}

/** A rate window as written: `14/1s`, `50,000/24h`. */
export function windowText(max: number, perMs: number): string {
  // Days only past two of them: a daily quota reads best as 24h.
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1_000, 's']];
  const unit = units.find(([size, name]) => perMs >= (name === 'd' ? 2 * size : size) && perMs % size === 0);
  return `${count(max)}/${unit ? `${perMs / unit[0]}${unit[1]}` : `${perMs}ms`}`;
}

/** Why a file could not be read or written, in a few words: `no such file`, `permission denied`. */
export function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  const known: Record<string, string> = { ENOENT: 'no such file or directory', EISDIR: 'it is a directory', EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system', ENOTDIR: 'a part of the path is not a directory' };
  return (code !== undefined && known[code]) || (error as Error)?.message || String(error);
}

/** The error's message, and with `verbose` its stack and causes. */
export function errorText(error: unknown, verbose: boolean): string {
  if (!(error instanceof Error)) return String(error);
  if (!verbose) return error.message;
  const lines = [error.stack ?? error.message];
  let cause = error.cause;
  while (cause !== undefined) {
    lines.push(`caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return lines.join('\n');
}
