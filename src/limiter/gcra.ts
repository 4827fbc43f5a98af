import type { RateWindowSpec } from './limiter.js';

/**
 * Windows up to this long are paced by GCRA; longer ones are quotas, counted in buckets (see
 * `gcraReserve`). The config schema uses the same threshold for its `burst` default and check.
 */
export const QUOTA_MIN_EXCLUSIVE_PER_MS = 60_000;

/**
 * Buckets `k` a quota window is split into. 24 makes a bucket of one hour for a 24 h quota. A quota
 * window is longer than a minute, so a bucket is always longer than 2.5 s: the count stays small (a
 * quota keeps at most `k + 1` live buckets plus those of bookings ahead of now) and bucket numbers
 * stay small integers. The price of a coarser bucket is under-admission: at most one bucket's share
 * (`1 / (k + 1)`, about 4 %) of the quota in steady state, and a send refused for the quota waits
 * for up to one bucket longer than an exact rolling count would make it wait.
 */
export const QUOTA_BUCKETS = 24;

/** Passes of the fixed-point search over quota windows before falling back to a time every window admits (never reached in practice). */
const MAX_PASSES = 32;

/** Whether a window is a quota (counted in buckets) rather than a GCRA window (spaced). */
/**
 * The pace of a set of windows, in sends per second: the tightest window of a minute or less.
 * Quota windows (longer) cap a total, not a pace, and say nothing of sends per second: a lane of
 * 20/s and 100,000/24h paces at 20/s. `Infinity` when no window paces.
 */
export function paceRate(windows: readonly RateWindowSpec[]): number {
  let rate = Infinity;
  for (const window of windows) if (!isQuotaWindow(window)) rate = Math.min(rate, (window.max / window.perMs) * 1_000);
  return rate;
}

export function isQuotaWindow(window: RateWindowSpec): boolean {
  return window.perMs > QUOTA_MIN_EXCLUSIVE_PER_MS;
}

/**
 * Length of one bucket of a quota window, in whole milliseconds: `ceil(perMs / k)`, so that `k`
 * buckets cover at least `perMs` and a bucket's start `b * bucketMs` is an exact integer (its
 * bucket number `floor(start / bucketMs)` is then exactly `b`, in JavaScript and in Lua alike).
 */
export function quotaBucketMs(window: RateWindowSpec): number {
  return Math.ceil(window.perMs / QUOTA_BUCKETS);
}

/** What the rate windows of a lane remember between bookings. */
export interface RateState {
  /** GCRA windows: theoretical arrival time of window `i`, in ms (0 for quota windows). */
  readonly tats: readonly number[];
  /**
   * Quota windows: sends booked per absolute bucket number `floor(at / bucketMs)` of window `i`,
   * bookings ahead of now included (empty for GCRA windows). Buckets that can no longer matter
   * are dropped.
   */
  readonly buckets: readonly ReadonlyMap<number, number>[];
}

/** The state of windows that never booked anything. */
export function emptyRateState(windows: readonly RateWindowSpec[]): RateState {
  return { tats: windows.map(() => 0), buckets: windows.map(() => new Map<number, number>()) };
}

/**
 * Books one send in every rate window of a lane at once and returns when it may go: the pure
 * arithmetic behind both the memory limiter and `lua/reserve-2.lua` (keep the two in step).
 *
 * **Windows of a minute or less: GCRA.** Each window `{ max, perMs, burst }` has an emission
 * interval `T = perMs / max` and a burst tolerance `tau = (burst - 1) * T`. A send is admitted at
 * any `at` where `TAT - tau <= at`; the window's theoretical arrival time then becomes
 * `max(TAT, at) + T`. With burst 1 this is exact even spacing. `rateFactor` (0..1], the adaptive
 * controller's slow-down, stretches every GCRA interval.
 *
 * **Longer windows: quotas, "at most `max` sends in any interval of length `perMs`".** GCRA with
 * `burst = max` would let about `2 * max - 1` through in a rolling window after an idle period, so
 * a quota is counted instead. `perMs` is split into `k = QUOTA_BUCKETS` buckets of
 * `bm = ceil(perMs / k)` ms, a booking at `t` counts in bucket `B(t) = floor(t / bm)`, and
 * `S(j)` is the sum of the counts of buckets `j - k .. j` (k + 1 buckets). A send is admitted in
 * bucket `c` only if `S(j) + 1 <= max` for every `j` in `c .. c + k` (every sum the booking joins;
 * when bookings only move forward this is just `S(c) + 1 <= max`, and bookings ahead of now are
 * counted in their own bucket, so a send booked earlier than one already booked is checked too).
 * `burst` means nothing for a quota and is ignored; `rateFactor` does not apply either: a quota is
 * the provider's count, and slowing down the pace (the GCRA windows) is what the controller is for.
 *
 * Why this never overshoots: every `S(j) <= max` holds after each booking, since a booking is only
 * made when the sums it raises stay within `max`. Take any interval `(e - perMs, e]`. A send in it
 * at `t` has `t > e - perMs >= e - k * bm`, so `B(t) >= floor(e / bm - k) = B(e) - k`, and
 * `B(t) <= B(e)`: every send of the interval lies in buckets `B(e) - k .. B(e)`, and their number
 * is at most `S(B(e)) <= max`.
 *
 * What it costs: the counts do not know where in a bucket a send went, so a whole bucket's sends
 * hold the quota until that bucket has left the window: in steady state `max` sends per `k + 1`
 * buckets, an efficiency of `k / (k + 1)` (96 % with 24 buckets).
 *
 * Reserve mode: `at` starts at `max(now, notBefore)` and the GCRA lower bound; a quota that cannot
 * admit at `at` moves it to the start of the earliest later bucket where it can (walking forward, so
 * the oldest buckets leave the sums). Since one quota moving `at` may make another refuse it, the
 * quotas are tried again until they all admit the same `at`: `at` only grows, and it can take only
 * bucket starts below the time every quota is empty, so the loop ends (it is also capped, falling
 * back to that time). The send is then counted in the bucket of `at` of every quota window, and
 * buckets older than `B(now) - k` are dropped (no booking at or after now can join their sums).
 */
export function gcraReserve(
  state: RateState,
  windows: readonly RateWindowSpec[],
  rateFactor: number,
  now: number,
  notBefore = 0,
): { at: number; state: RateState } {
  let at = Math.max(now, notBefore);
  const buckets: Map<number, number>[] = [];
  for (let i = 0; i < windows.length; i++) {
    const window = windows[i]!;
    if (isQuotaWindow(window)) {
      buckets.push(liveBuckets(state.buckets[i], window, now));
    } else {
      buckets.push(new Map());
      const { tolerance } = emission(window, rateFactor);
      at = Math.max(at, Math.max(state.tats[i] ?? 0, now) - tolerance);
    }
  }

  for (let pass = 1; ; pass++) {
    let moved = false;
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i]!;
      if (!isQuotaWindow(window)) continue;
      const next = quotaEarliest(buckets[i]!, window, at);
      if (next > at) {
        at = next;
        moved = true;
      }
    }
    if (!moved) break;
    if (pass >= MAX_PASSES) {
      for (let i = 0; i < windows.length; i++) {
        const window = windows[i]!;
        if (isQuotaWindow(window)) at = Math.max(at, quotaClearAt(buckets[i]!, window));
      }
      break;
    }
  }

  const tats = windows.map((window, i) => {
    if (isQuotaWindow(window)) return 0;
    return Math.max(state.tats[i] ?? 0, at) + emission(window, rateFactor).interval;
  });
  for (let i = 0; i < windows.length; i++) {
    const window = windows[i]!;
    if (!isQuotaWindow(window)) continue;
    const bucket = Math.floor(at / quotaBucketMs(window));
    const counts = buckets[i]!;
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  return { at, state: { tats, buckets } };
}

/** Emission interval and burst tolerance of a GCRA window at a rate factor, in milliseconds. */
export function emission(window: RateWindowSpec, rateFactor: number): { interval: number; tolerance: number } {
  const interval = window.perMs / window.max / rateFactor;
  return { interval, tolerance: (window.burst - 1) * interval };
}

/** A copy of a quota window's counts without the buckets older than `B(now) - k`. */
function liveBuckets(counts: ReadonlyMap<number, number> | undefined, window: RateWindowSpec, now: number): Map<number, number> {
  const oldest = Math.floor(now / quotaBucketMs(window)) - QUOTA_BUCKETS;
  const live = new Map<number, number>();
  for (const [bucket, count] of counts ?? []) if (bucket >= oldest) live.set(bucket, count);
  return live;
}

/**
 * The earliest time at or after `at` when a quota window admits one more send: `at` itself, or
 * the start of the first later bucket `c` with `S(j) + 1 <= max` for every `j` in `c .. c + k`.
 * One pass over `j` with a running sum: a `j` whose sum is full rules out every `c` up to `j`.
 * Past `j = last booked bucket + k` every sum is 0, so the walk is bounded.
 */
function quotaEarliest(counts: ReadonlyMap<number, number>, window: RateWindowSpec, at: number): number {
  const bucketMs = quotaBucketMs(window);
  const k = QUOTA_BUCKETS;
  const first = Math.floor(at / bucketMs);
  let last = first;
  for (const bucket of counts.keys()) last = Math.max(last, bucket);
  let sum = 0;
  for (let bucket = first - k; bucket <= first; bucket++) sum += counts.get(bucket) ?? 0;
  let candidate = first;
  for (let j = first; j <= candidate + k && j <= last + k; j++) {
    if (j > first) sum += (counts.get(j) ?? 0) - (counts.get(j - k - 1) ?? 0);
    if (sum + 1 > window.max) candidate = j + 1;
  }
  return candidate === first ? at : candidate * bucketMs;
}

/** When every booked bucket of a quota window has left it: from then on it admits anything. */
function quotaClearAt(counts: ReadonlyMap<number, number>, window: RateWindowSpec): number {
  let last = Number.NEGATIVE_INFINITY;
  for (const bucket of counts.keys()) last = Math.max(last, bucket);
  return (last + QUOTA_BUCKETS + 1) * quotaBucketMs(window);
}
