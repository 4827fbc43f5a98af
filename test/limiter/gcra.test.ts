import { describe, expect, it } from 'vitest';
import { emptyRateState, gcraReserve, QUOTA_BUCKETS, quotaBucketMs } from '../../src/limiter/gcra.js';
import type { RateWindowSpec } from '../../src/limiter/limiter.js';

/** Books `n` sends arriving all at `now` and returns the times they were booked for. */
function book(windows: RateWindowSpec[], n: number, now = 0, rateFactor = 1, notBefore = 0): number[] {
  let state = emptyRateState(windows);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = gcraReserve(state, windows, rateFactor, now, notBefore);
    state = r.state;
    times.push(r.at);
  }
  return times;
}

/** The most sends in any interval `(t - windowMs, t]`: two pointers over the (sorted) booked times. */
const maxInWindow = (times: number[], windowMs: number) => {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
};

describe('GCRA reserve', () => {
  it('spaces sends evenly at max/per with burst 1', () => {
    expect(book([{ max: 10, perMs: 1_000, burst: 1 }], 5)).toEqual([0, 100, 200, 300, 400]);
  });

  it('lets `burst` sends go at once, then paces', () => {
    expect(book([{ max: 10, perMs: 1_000, burst: 3 }], 5)).toEqual([0, 0, 0, 100, 200]);
  });

  it('never admits more than max in any window of length per, with burst 1', () => {
    const times = book([{ max: 50, perMs: 1_000, burst: 1 }], 1_000);
    expect(maxInWindow(times, 1_000)).toBe(50);
    expect(times.at(-1)).toBe(19_980);
  });

  it('takes the tightest of several windows: every window must admit', () => {
    const times = book([{ max: 10, perMs: 1_000, burst: 1 }, { max: 3, perMs: 60_000, burst: 3 }], 5);
    expect(times).toEqual([0, 100, 200, 20_000, 40_000]);
  });

  it('stretches every interval by the rate factor', () => {
    expect(book([{ max: 10, perMs: 1_000, burst: 1 }], 3, 0, 0.5)).toEqual([0, 200, 400]);
  });

  it('books nothing before a pause ends', () => {
    expect(book([{ max: 10, perMs: 1_000, burst: 1 }], 2, 0, 1, 5_000)).toEqual([5_000, 5_100]);
    expect(book([], 2, 0, 1, 5_000)).toEqual([5_000, 5_000]);
  });

  it('forgets an idle past: a send after a long gap goes at once', () => {
    const windows = [{ max: 10, perMs: 1_000, burst: 1 }];
    const first = gcraReserve(emptyRateState(windows), windows, 1, 0);
    expect(gcraReserve(first.state, windows, 1, 10_000).at).toBe(10_000);
  });
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('quota windows (longer than a minute): a bucketed rolling count', () => {
  const sesSandbox: RateWindowSpec[] = [
    { max: 1, perMs: 1_000, burst: 1 },
    { max: 200, perMs: DAY, burst: 200 },
  ];
  const m365: RateWindowSpec[] = [
    { max: 30, perMs: 60_000, burst: 1 },
    { max: 10_000, perMs: DAY, burst: 10_000 },
  ];

  it('never lets more than max through in any rolling per: SES sandbox, 1/s and 200/24h', () => {
    const times = book(sesSandbox, 1_000);
    expect(maxInWindow(times, DAY)).toBe(200);
    expect(maxInWindow(times, 1_000)).toBe(1);
    // The first 200 go one per second; the 201st waits until the first bucket has left the window:
    // about 24 h after the first send, at most one bucket late.
    expect(times.slice(0, 200)).toEqual(Array.from({ length: 200 }, (_, i) => i * 1_000));
    const late = times[200]! - times[0]! - DAY;
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThanOrEqual(quotaBucketMs(sesSandbox[1]!));
  });

  it('never lets more than max through in any rolling per, nor in any minute: Microsoft 365, 30/min and 10,000/24h', () => {
    const times = book(m365, 40_000);
    expect(maxInWindow(times, DAY)).toBe(10_000);
    expect(maxInWindow(times, 60_000)).toBe(30);
    // The minute window stays GCRA with burst 1: one send every 2 s while the quota admits.
    expect(times.slice(0, 5)).toEqual([0, 2_000, 4_000, 6_000, 8_000]);
  });

  it('holds the quota whatever the phase of the first send within its bucket', () => {
    for (const start of [0, 1, HOUR / 2, HOUR - 1, 12_345_678.9]) {
      const times = book(sesSandbox, 600, start);
      expect(maxInWindow(times, DAY), `start ${start}`).toBe(200);
      expect(times[200]! - times[0]! - DAY, `start ${start}`).toBeLessThanOrEqual(HOUR);
    }
  });

  it('sustains at least max * k / (k + 1) per window over days of continuous sending', () => {
    const efficiency = QUOTA_BUCKETS / (QUOTA_BUCKETS + 1);
    for (const [name, windows, days] of [
      ['SES sandbox', sesSandbox, 10],
      ['Microsoft 365', m365, 6],
    ] as const) {
      const quota = windows[1]!;
      const sends = quota.max * days;
      const times = book([...windows], sends + 1);
      expect(maxInWindow(times, DAY), name).toBeLessThanOrEqual(quota.max);
      // `sends` sends took this many windows: the rate per window from the first to the last.
      const perWindow = sends / ((times.at(-1)! - times[0]!) / quota.perMs);
      expect(perWindow, name).toBeGreaterThanOrEqual(quota.max * efficiency * (1 - 1e-9));
      expect(perWindow, name).toBeLessThanOrEqual(quota.max);
    }
  });

  it('lets a quota-only lane send max at once, then waits for the first bucket to leave the window', () => {
    const quota: RateWindowSpec = { max: 5, perMs: 120_000, burst: 1 };
    const now = 1_000_003.5;
    const times = book([quota], 7, now);
    expect(times.slice(0, 5)).toEqual([now, now, now, now, now]);
    const bucketMs = quotaBucketMs(quota);
    expect(times[5]).toBe((Math.floor(now / bucketMs) + QUOTA_BUCKETS + 1) * bucketMs);
    expect(times[5]! - now).toBeGreaterThanOrEqual(quota.perMs);
    expect(times[5]! - now).toBeLessThanOrEqual(quota.perMs + bucketMs);
    expect(times[6]).toBe(times[5]);
  });

  it('ignores burst and rateFactor on a quota: a quota is a quota', () => {
    const strict = book([{ max: 5, perMs: 120_000, burst: 1 }], 7, 0, 0.25);
    const loose = book([{ max: 5, perMs: 120_000, burst: 5 }], 7, 0, 1);
    expect(strict).toEqual(loose);
    // The rate factor still stretches the GCRA windows alongside.
    expect(book([{ max: 10, perMs: 1_000, burst: 1 }, { max: 5, perMs: 120_000, burst: 5 }], 3, 0, 0.5)).toEqual([0, 200, 400]);
  });

  it('counts a booking ahead of now in its own bucket, and checks an earlier booking against it', () => {
    const windows: RateWindowSpec[] = [{ max: 2, perMs: 120_000, burst: 2 }];
    const bucketMs = quotaBucketMs(windows[0]!);
    // Booked far ahead by a pause, then again at once after the pause was lifted early.
    const ahead = gcraReserve(emptyRateState(windows), windows, 1, 0, 100_000);
    expect(ahead.at).toBe(100_000);
    const early = gcraReserve(ahead.state, windows, 1, 0);
    expect(early.at).toBe(0);
    // Full until the bucket of the send at 0 has left the window; the one at 100 s still counts.
    const third = gcraReserve(early.state, windows, 1, 0);
    expect(third.at).toBe((QUOTA_BUCKETS + 1) * bucketMs);
    const fourth = gcraReserve(third.state, windows, 1, 0);
    expect(fourth.at).toBe((Math.floor(100_000 / bucketMs) + QUOTA_BUCKETS + 1) * bucketMs);
    expect(maxInWindow([0, 100_000, third.at, fourth.at], 120_000)).toBe(2);
  });

  it('admits a send only when every quota admits it at the same time', () => {
    const windows: RateWindowSpec[] = [
      { max: 3, perMs: 2 * 60 * 60_000, burst: 3 },
      { max: 2, perMs: 5 * 60_000, burst: 2 },
    ];
    const times = book(windows, 12);
    expect(maxInWindow(times, windows[0]!.perMs)).toBeLessThanOrEqual(3);
    expect(maxInWindow(times, windows[1]!.perMs)).toBeLessThanOrEqual(2);
    expect(times.slice(0, 2)).toEqual([0, 0]);
    expect(times[2]).toBeGreaterThanOrEqual(windows[1]!.perMs);
    expect(times[3]).toBeGreaterThanOrEqual(windows[0]!.perMs);
  });

  it('drops buckets that have left every window it could still book in', () => {
    const windows: RateWindowSpec[] = [{ max: 1_000, perMs: DAY, burst: 1_000 }];
    let state = emptyRateState(windows);
    for (let hour = 0; hour < 100; hour++) state = gcraReserve(state, windows, 1, hour * HOUR).state;
    expect([...state.buckets[0]!.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: QUOTA_BUCKETS + 1 }, (_, i) => 99 - QUOTA_BUCKETS + i));
  });
});
