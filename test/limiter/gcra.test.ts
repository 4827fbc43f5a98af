import { describe, expect, it } from 'vitest';
import { gcraReserve } from '../../src/limiter/gcra.js';
import type { RateWindowSpec } from '../../src/limiter/limiter.js';

/** Books `n` sends arriving all at `now` and returns the times they were booked for. */
function book(windows: RateWindowSpec[], n: number, now = 0, rateFactor = 1, notBefore = 0): number[] {
  let tats = windows.map(() => 0);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = gcraReserve(tats, windows, rateFactor, now, notBefore);
    tats = r.tats;
    times.push(r.at);
  }
  return times;
}

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
    const first = gcraReserve([0], windows, 1, 0);
    expect(gcraReserve(first.tats, windows, 1, 10_000).at).toBe(10_000);
  });
});
