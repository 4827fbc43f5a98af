import type { RateWindowSpec } from './limiter.js';

/**
 * GCRA in reserve mode over several windows at once: the pure arithmetic behind both the memory
 * limiter and `lua/reserve-*.lua` (keep the two in step).
 *
 * Each window `{ max, perMs, burst }` has an emission interval `T = perMs / max` and a burst
 * tolerance `tau = (burst - 1) * T`. A send is admitted at the earliest `at >= now` where
 * `TAT - tau <= at` holds in every window; each window's theoretical arrival time then becomes
 * `max(TAT, at) + T`. `rateFactor` (0..1] stretches every interval: the adaptive controller's
 * slow-down.
 */
export function gcraReserve(
  tats: readonly number[],
  windows: readonly RateWindowSpec[],
  rateFactor: number,
  now: number,
  notBefore = 0,
): { at: number; tats: number[] } {
  let at = Math.max(now, notBefore);
  for (let i = 0; i < windows.length; i++) {
    const { interval, tolerance } = emission(windows[i]!, rateFactor);
    const tat = Math.max(tats[i] ?? 0, now);
    at = Math.max(at, tat - tolerance);
  }
  const next = windows.map((window, i) => Math.max(tats[i] ?? 0, at) + emission(window, rateFactor).interval);
  return { at, tats: next };
}

/** Emission interval and burst tolerance of a window at a rate factor, in milliseconds. */
export function emission(window: RateWindowSpec, rateFactor: number): { interval: number; tolerance: number } {
  const interval = window.perMs / window.max / rateFactor;
  return { interval, tolerance: (window.burst - 1) * interval };
}
