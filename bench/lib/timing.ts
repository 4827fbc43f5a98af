/** Time caps and CPU accounting shared by the scenarios. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type Capped<T> = { timedOut: false; value: T } | { timedOut: true };

/** Waits for `promise`, at most `ms`: a contender that never finishes is reported, not waited for. */
export async function withinCap<T>(promise: Promise<T>, ms: number): Promise<Capped<T>> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<Capped<T>>((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), ms);
  });
  try {
    return await Promise.race([promise.then((value): Capped<T> => ({ timedOut: false, value })), cap]);
  } finally {
    clearTimeout(timer);
  }
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** User + system CPU of this process since `start`, in microseconds. */
export function cpuMicros(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

let collect: (() => void) | undefined;

/**
 * A full garbage collection between contenders, so that one does not pay for the garbage of the
 * one before. `npm run bench` runs tsx without `--expose-gc`; the flag is switched on here.
 */
export function collectGarbage(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}
