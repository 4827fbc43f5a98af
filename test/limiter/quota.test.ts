import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseOptions } from '../../src/config/parse.js';
import { ConfigError } from '../../src/errors.js';
import { emptyRateState, gcraReserve, isQuotaWindow, QUOTA_BUCKETS, quotaBucketMs, type RateState } from '../../src/limiter/gcra.js';
import type { RateWindowSpec } from '../../src/limiter/limiter.js';
import { createMemoryLimiter } from '../../src/limiter/memory.js';
import { laneKeys } from '../../src/limiter/redis.js';
import { defineScripts, runScript } from '../../src/limiter/scripts.js';
import { redisAvailable, uniquePrefix } from '../helpers/redis-server.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * The most sends in any interval `(t - windowMs, t]`, over booked times in any order. `slackMs`
 * forgives floating-point rounding: GCRA adds up intervals such as 1000 / 3 ms, so `max` sends
 * may end up 1e-8 ms short of a full window apart.
 */
function maxInWindow(times: readonly number[], windowMs: number, slackMs = 0): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs - slackMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** A small seeded PRNG (mulberry32): the random tests are the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('quota windows under random traffic', () => {
  const cases: Array<{ name: string; windows: RateWindowSpec[] }> = [
    { name: 'one quota', windows: [{ max: 7, perMs: 2 * MINUTE, burst: 7 }] },
    { name: 'pace and quota', windows: [{ max: 5, perMs: 1_000, burst: 2 }, { max: 40, perMs: 10 * MINUTE, burst: 40 }] },
    {
      name: 'two quotas and a pace',
      windows: [{ max: 3, perMs: 1_000, burst: 1 }, { max: 20, perMs: 5 * MINUTE, burst: 20 }, { max: 50, perMs: HOUR, burst: 50 }],
    },
  ];

  for (const { name, windows } of cases) {
    it(`never lets more than max through in any rolling per: ${name}`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const next = random(seed);
        let state = emptyRateState(windows);
        let now = Math.floor(next() * DAY);
        const booked: number[] = [];
        for (let i = 0; i < 400; i++) {
          // Sends arrive at random, sometimes all at once, sometimes after a long idle period.
          now += next() < 0.3 ? 0 : next() < 0.9 ? next() * 20_000 : next() * 2 * HOUR;
          // Now and then a pause (which may end before bookings already made) and a slow-down.
          const notBefore = next() < 0.05 ? now + next() * 10 * MINUTE : 0;
          const rateFactor = next() < 0.2 ? 0.3 + next() * 0.7 : 1;
          const result = gcraReserve(state, windows, rateFactor, now, notBefore);
          expect(result.at).toBeGreaterThanOrEqual(Math.max(now, notBefore));
          state = result.state;
          booked.push(result.at);
        }
        for (const window of windows) {
          if (isQuotaWindow(window) || window.burst === 1) {
            expect(maxInWindow(booked, window.perMs, 1e-6), `seed ${seed}, ${window.max} per ${window.perMs} ms`).toBeLessThanOrEqual(window.max);
          }
        }
      }
    });
  }
});

describe('the memory limiter on a simulated clock', () => {
  it('holds Microsoft 365 limits (30/min, 10,000/24h) over three days of senders that wait as told', async () => {
    let clock = 1_700_000_000_000;
    const limiter = createMemoryLimiter({ now: () => clock });
    const windows: RateWindowSpec[] = [
      { max: 30, perMs: MINUTE, burst: 1 },
      { max: 10_000, perMs: DAY, burst: 10_000 },
    ];
    const lane = limiter.lane('m365', { windows, maxConnections: 3 });
    const start = clock;
    const booked: number[] = [];
    while (clock < start + 3 * DAY) {
      // Three connections: three bookings per step, then the clock moves to the earliest of them.
      const waits = [(await lane.reserve()).waitMs, (await lane.reserve()).waitMs, (await lane.reserve()).waitMs];
      for (const wait of waits) booked.push(clock + wait);
      clock += Math.min(...waits);
    }
    await limiter.close();
    expect(maxInWindow(booked, DAY)).toBeLessThanOrEqual(10_000);
    expect(maxInWindow(booked, MINUTE)).toBeLessThanOrEqual(30);
    // Over three days: at least k / (k + 1) of the quota per day, less the first send's offset.
    expect(booked.filter((at) => at < start + 3 * DAY).length).toBeGreaterThanOrEqual(Math.floor((3 * 10_000 * QUOTA_BUCKETS) / (QUOTA_BUCKETS + 1)));
  });
});

describe('rate window config', () => {
  const smtp = { host: 'smtp.example.org', port: 587 };
  const configError = (rate: unknown): ConfigError => {
    try {
      parseOptions({ providers: { p: { transport: smtp, rate } } });
    } catch (error) {
      if (error instanceof ConfigError) return error;
      throw error;
    }
    throw new Error('expected a ConfigError');
  };

  it('refuses burst on a window longer than a minute, saying why', () => {
    const list = configError([{ max: 30, per: '1m' }, { max: 10_000, per: '24h', burst: 1 }]);
    expect(list.issues.map((issue) => issue.path)).toEqual(['providers.p.rate[1].burst']);
    expect(list.message).toContain('burst applies to windows of a minute or less');
    expect(list.message).toContain('at most max sends in any interval of length per');
    expect(configError({ max: 200, per: '2m', burst: 200 }).issues.map((issue) => issue.path)).toEqual(['providers.p.rate.burst']);
  });

  it('keeps burst for windows of a minute or less, and gives a quota burst max (which the limiter ignores)', () => {
    const config = parseOptions({
      providers: { p: { transport: smtp, rate: [{ max: 30, per: '1m', burst: 5 }, { max: 10, per: '1s' }, { max: 10_000, per: '24h' }] } },
    });
    expect(config.providers.p!.rate).toEqual([
      { max: 30, perMs: MINUTE, burst: 5 },
      { max: 10, perMs: 1_000, burst: 1 },
      { max: 10_000, perMs: DAY, burst: 10_000 },
    ]);
  });
});

const available = await redisAvailable();

describe.skipIf(!available)('reserve-2.lua against the pure arithmetic', () => {
  let client: Redis;
  let prefix: string;
  const windows: RateWindowSpec[] = [
    { max: 10, perMs: 1_000, burst: 3 },
    { max: 5, perMs: 2 * MINUTE, burst: 5 },
    { max: 8, perMs: 5 * MINUTE, burst: 8 },
  ];
  const MARGIN_MS = 1_000;
  // As RedisLane.reserve builds them: kind, max, perMs, then burst (GCRA) or the bucket count (quota).
  const args = [MARGIN_MS, 0, ...windows.flatMap((w) => (isQuotaWindow(w) ? ['quota', w.max, w.perMs, QUOTA_BUCKETS] : ['gcra', w.max, w.perMs, w.burst]))];

  beforeAll(() => {
    client = new Redis({ host: '127.0.0.1', port: 6379 });
    defineScripts(client);
  });
  afterEach(async () => {
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(...keys);
  });
  afterAll(async () => {
    await client.quit();
  });

  const reserve = async (keys: { tat: string; state: string }): Promise<{ waitMs: number; now: number }> => {
    const reply = (await runScript(client, 'reserve', [keys.tat, keys.state], args)) as unknown[];
    return { waitMs: Number(reply[0]), now: Number(reply[1]) };
  };

  /** The rate hash as the pure state it should equal. */
  const stored = async (tat: string): Promise<RateState> => {
    const hash = await client.hgetall(tat);
    const state = { tats: windows.map(() => 0), buckets: windows.map(() => new Map<number, number>()) };
    for (const [field, value] of Object.entries(hash)) {
      const quota = /^q(\d+):(-?\d+)$/.exec(field);
      if (quota) state.buckets[Number(quota[1])]!.set(Number(quota[2]), Number(value));
      else state.tats[Number(field)] = Number(value);
    }
    return state;
  };

  it('books exactly what gcraReserve books for the same clock, and stores the same state', async () => {
    prefix = uniquePrefix();
    const keys = laneKeys(prefix, 'lua');
    await client.hset(keys.state, 'rateFactor', '0.5');
    let state = emptyRateState(windows);
    for (let i = 0; i < 20; i++) {
      const { waitMs, now } = await reserve(keys);
      const result = gcraReserve(state, windows, 0.5, now);
      state = result.state;
      expect(Math.abs(waitMs - (result.at - now)), `booking #${i}`).toBeLessThan(1e-6);
    }
    const kept = await stored(keys.tat);
    expect(kept.buckets).toEqual(state.buckets);
    kept.tats.forEach((tat, i) => expect(Math.abs(tat - state.tats[i]!)).toBeLessThan(1e-6));
  });

  it('counts live buckets already stored, and deletes stale fields', async () => {
    prefix = uniquePrefix();
    const keys = laneKeys(prefix, 'stale');
    const bucketMs = quotaBucketMs(windows[1]!);
    // Not near the end of a bucket: this client's clock and the server's must name the same one.
    if (Date.now() % bucketMs > bucketMs - 500) await new Promise((resolve) => setTimeout(resolve, 600));
    const bucket = Math.floor(Date.now() / bucketMs);
    await client.hset(keys.tat, {
      // Live and full: window 1 admits nothing until this bucket has left it.
      [`q1:${bucket}`]: '5',
      // Stale: a bucket long gone, a quota field of a GCRA window, a TAT field of a quota, a window that is not there.
      'q1:5': '3',
      [`q0:${bucket}`]: '1',
      '1': '123',
      '7': '456',
      [`q9:${bucket}`]: '1',
    });
    const { waitMs, now } = await reserve(keys);
    const at = (bucket + QUOTA_BUCKETS + 1) * bucketMs;
    expect(Math.abs(now + waitMs - at)).toBeLessThan(1e-3);
    const fields = Object.keys(await client.hgetall(keys.tat)).sort();
    expect(fields).toEqual(['0', `q1:${bucket}`, `q1:${bucket + QUOTA_BUCKETS + 1}`, `q2:${Math.floor(at / quotaBucketMs(windows[2]!))}`].sort());
  });

  it('keeps the rate hash until the newest quota bucket has left its window', async () => {
    prefix = uniquePrefix();
    const keys = laneKeys(prefix, 'ttl');
    let last = 0;
    for (let i = 0; i < 6; i++) {
      const { waitMs, now } = await reserve(keys);
      last = now + waitMs;
    }
    const clientNow = Date.now();
    const ttl = await client.pttl(keys.tat);
    // The sixth booking waited for window 1 (5 per 2 min); it also counts in window 2 (8 per 5 min),
    // so the hash must outlive it by 5 min, and not by much more than a bucket and the margin.
    expect(last - clientNow).toBeGreaterThan(windows[1]!.perMs - 1_000);
    const quota = windows[2]!;
    expect(ttl).toBeGreaterThanOrEqual(last + quota.perMs - clientNow - 50);
    expect(ttl).toBeLessThanOrEqual(last + quota.perMs + quotaBucketMs(quota) - clientNow + MARGIN_MS + 50);
  });
});
