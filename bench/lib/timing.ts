/** Time caps and CPU accounting shared by the scenarios. */
import { monitorEventLoopDelay } from 'node:perf_hooks';
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

/** How late this process's event loop ran while it was watched, in milliseconds. */
export interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

const LOOP_SAMPLE_MS = 10;

/**
 * Starts watching how late this process's event loop runs; the function returned stops and
 * reports. `monitorEventLoopDelay` samples every 10 ms and records the time between samples (about
 * 10 ms on an idle process), so 10 ms is taken off: what is left is how late the loop ran. A
 * timestamp taken by a late loop (a receiver's, a sender's) is late by as much: on a machine whose
 * 2 CPUs run 4 senders, the receiver and Redis at once, messages sent on time can be recorded
 * together.
 */
export function watchLoopDelay(): () => LoopDelay {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  histogram.enable();
  const late = (ns: number) => Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS);
  return () => {
    histogram.disable();
    return { p99Ms: late(histogram.percentile(99)), maxMs: late(histogram.max) };
  };
}
