import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialState, type AdaptiveState } from '../../src/lanes/controller.js';
import { QUOTA_BUCKETS, quotaBucketMs } from '../../src/limiter/gcra.js';
import type { LaneSpec, Lease, Limiter } from '../../src/limiter/limiter.js';
import { createMemoryLimiter } from '../../src/limiter/memory.js';

/** Waits are compared with each other, never with wall time; this much slack absorbs call latency. */
const TOLERANCE_MS = 15;
/** Long enough for a waiting acquire to have been granted if it were going to be. */
const STILL_WAITING_MS = 150;
/** A woken waiter must be granted well before any fallback re-check (1 s) would grant it. */
const WAKE_MS = 500;

const oneWindow = (max: number, perMs: number, burst = 1, maxConnections = 1): LaneSpec => ({
  windows: [{ max, perMs, burst }],
  maxConnections,
});

/**
 * Books `count` sends one after another and returns when each was booked for, relative to the first
 * reply: the wait plus the time the reply came back. Time passes between the calls (more on a
 * loaded machine, or while a Cluster client connects) and a later call's wait is shorter by that
 * much; the booked times do not drift with it. The script runs just before its reply arrives, so
 * the reply's time stands for the limiter's clock.
 */
async function waits(lane: { reserve(): Promise<{ waitMs: number }> }, count: number): Promise<number[]> {
  const result: number[] = [];
  let origin: number | undefined;
  for (let i = 0; i < count; i++) {
    const { waitMs } = await lane.reserve();
    const now = performance.now();
    origin ??= now;
    result.push(now - origin + waitMs);
  }
  return result;
}

/** Each wait after the first is `interval` later than the one before, measured from the first. */
function expectSpacing(result: number[], interval: number): void {
  const first = result[0]!;
  result.forEach((wait, i) => {
    expect(Math.abs(wait - first - i * interval), `wait #${i} = ${wait} after ${first}`).toBeLessThanOrEqual(TOLERANCE_MS);
  });
}

/**
 * Waits, if needed, until at least `needMs` remain before the next bucket boundary (bucket starts
 * are multiples of `bucketMs` in epoch time), so that bookings made now fall in one bucket.
 */
async function awayFromBucketEdge(bucketMs: number, needMs: number): Promise<void> {
  const phase = Date.now() % bucketMs;
  if (phase > bucketMs - needMs) await sleep(bucketMs - phase + 20);
}

/** A promise whose settlement can be checked without awaiting it. */
function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * The behaviour every `Limiter` implementation must show, whatever keeps its state. Each test gets
 * a fresh limiter from `makeLimiter`; the suite closes it after the test, then calls `cleanup`.
 */
export function runLimiterContract(name: string, makeLimiter: () => Promise<Limiter>, cleanup: () => Promise<void>): void {
  describe(`${name} limiter (contract)`, () => {
    let limiter: Limiter;
    const leases: Lease[] = [];

    beforeEach(async () => {
      limiter = await makeLimiter();
    });

    afterEach(async () => {
      await Promise.allSettled(leases.splice(0).map((lease) => lease.release()));
      await limiter.close();
      await cleanup();
    });

    const hold = async (lease: Promise<Lease>): Promise<Lease> => {
      const granted = await lease;
      leases.push(granted);
      return granted;
    };

    describe('reserve()', () => {
      it('lets the first send go at once and books the next ones one emission interval apart', async () => {
        const lane = limiter.lane('spacing', oneWindow(10, 1_000));
        const result = await waits(lane, 10);
        expect(result[0]).toBe(0);
        expectSpacing(result, 100);
      });

      it('admits `burst` sends at once after an idle period, then spaces the rest', async () => {
        const lane = limiter.lane('burst', oneWindow(10, 1_000, 3));
        const result = await waits(lane, 6);
        for (const wait of result.slice(0, 3)) expect(wait).toBeLessThanOrEqual(TOLERANCE_MS);
        // From the fourth on: 100, 200, 300 ms after the first.
        expectSpacing([result[0]!, ...result.slice(3)], 100);
      });

      it('books in every window at once, so the tightest window sets the pace', async () => {
        const lane = limiter.lane('windows', {
          windows: [
            { max: 100, perMs: 1_000, burst: 5 },
            { max: 4, perMs: 1_000, burst: 1 },
          ],
          maxConnections: 1,
        });
        expectSpacing(await waits(lane, 5), 250);
      });

      it('stretches the spacing by 1 / rateFactor', async () => {
        const lane = limiter.lane('factor', oneWindow(10, 1_000));
        await lane.update((state) => ({ ...state, rateFactor: 0.5 }));
        const result = await waits(lane, 5);
        expect(result[0]).toBe(0);
        expectSpacing(result, 200);
      });

      it('books nothing before the lane pause ends', async () => {
        const lane = limiter.lane('paused', oneWindow(10, 1_000));
        const paused = await lane.update((state, now) => ({ ...state, pausedUntil: now + 300, pauseReason: 'test' }));
        const first = await lane.reserve();
        expect(Math.abs(first.waitMs - 300)).toBeLessThanOrEqual(TOLERANCE_MS);
        expect(first.state.pausedUntil).toBe(paused.pausedUntil);
        expect(first.state.pauseReason).toBe('test');
        const second = await lane.reserve();
        expect(Math.abs(second.waitMs - first.waitMs - 100)).toBeLessThanOrEqual(TOLERANCE_MS);
      });

      it('books nothing while the lane is stopped, and says so in the state', async () => {
        const lane = limiter.lane('stopped', oneWindow(10, 1_000));
        expect((await lane.reserve()).waitMs).toBe(0);
        await lane.update((state) => ({ ...state, stopped: 'auth' }));
        for (const reservation of await Promise.all([lane.reserve(), lane.reserve(), lane.reserve(), lane.reserve(), lane.reserve()])) {
          expect(reservation).toEqual({ waitMs: 0, state: expect.objectContaining({ stopped: 'auth' }) });
        }
        await lane.update((state) => ({ ...state, stopped: null }));
        // Only the send before the stop is booked: the next one waits one interval, not six.
        expect((await lane.reserve()).waitMs).toBeLessThanOrEqual(100 + TOLERANCE_MS);
      });

      describe('quota windows (longer than a minute)', () => {
        // 24 buckets of 5 s: a window that can be exercised without waiting for it.
        const quota = { max: 5, perMs: 120_000, burst: 1 };
        const bucketMs = quotaBucketMs(quota);

        it('lets max sends go at once, then books the next one when the first bucket has left the window', async () => {
          const lane = limiter.lane('quota', { windows: [quota], maxConnections: 1 });
          await awayFromBucketEdge(bucketMs, 1_000);
          const result = await waits(lane, 7);
          for (const wait of result.slice(0, 5)) expect(wait).toBeLessThanOrEqual(TOLERANCE_MS);
          // The start of bucket B(first) + k + 1: at least per after the first send, at most one bucket more.
          expect(result[5]!).toBeGreaterThanOrEqual(quota.perMs - TOLERANCE_MS);
          expect(result[5]!).toBeLessThanOrEqual(quota.perMs + bucketMs + TOLERANCE_MS);
          // The same bucket start again: the window then holds one send.
          expect(Math.abs(result[6]! - result[5]!)).toBeLessThanOrEqual(TOLERANCE_MS);
        });

        it('ignores the rate factor on a quota, and keeps stretching the GCRA windows', async () => {
          const lane = limiter.lane('quota-factor', { windows: [quota], maxConnections: 1 });
          await lane.update((state) => ({ ...state, rateFactor: 0.2 }));
          await awayFromBucketEdge(bucketMs, 1_000);
          for (const wait of await waits(lane, 5)) expect(wait).toBeLessThanOrEqual(TOLERANCE_MS);
        });

        it('books the same times as the memory limiter for the same sequence', async () => {
          const spec: LaneSpec = { windows: [{ max: 10, perMs: 1_000, burst: 1 }, quota], maxConnections: 1 };
          const reference = createMemoryLimiter();
          try {
            const lanes = [limiter.lane('quota-agree', spec), reference.lane('quota-agree', spec)] as const;
            // Ten bookings 100 ms apart at most, the first five in one bucket.
            await awayFromBucketEdge(bucketMs, 1_000);
            const booked: [number[], number[]] = [[], []];
            for (let i = 0; i < 10; i++) {
              // Interleaved, so that both see about the same clock at each step.
              for (const [n, lane] of lanes.entries()) {
                const { waitMs } = await lane.reserve();
                booked[n]!.push(Date.now() + waitMs);
              }
            }
            const [mine, memory] = booked;
            mine.forEach((at, i) => expect(Math.abs(at - memory[i]!), `booking #${i}: ${at} vs ${memory[i]}`).toBeLessThanOrEqual(TOLERANCE_MS));
            // Five paced by the 10/s window; the sixth at the start of bucket B(first) + k + 1, the
            // next ones paced again (the window then holds only them).
            expectSpacing(memory.slice(0, 5), 100);
            expect(memory[5]! % bucketMs).toBeLessThanOrEqual(TOLERANCE_MS);
            expect(memory[5]! - memory[0]!).toBeGreaterThan((QUOTA_BUCKETS - 1) * bucketMs);
            expect(memory[5]! - memory[0]!).toBeLessThanOrEqual((QUOTA_BUCKETS + 1) * bucketMs + TOLERANCE_MS);
            expectSpacing(memory.slice(5), 100);
          } finally {
            await reference.close();
          }
        });
      });

      it('returns the lane state with the booking', async () => {
        const lane = limiter.lane('reservation-state', oneWindow(10, 1_000, 1, 4));
        const updated = await lane.update((state, now) => ({ ...state, rateFactor: 0.75, connections: 2.5, lastDecreaseAt: now }));
        expect((await lane.reserve()).state).toEqual(updated);
      });
    });

    describe('acquire()', () => {
      it('grants up to floor(connections) slots; the next waits for a release', async () => {
        const lane = limiter.lane('cap', oneWindow(10, 1_000, 1, 3));
        await lane.update((state) => ({ ...state, connections: 2.5 }));
        const first = await hold(lane.acquire());
        await hold(lane.acquire());
        const third = track(hold(lane.acquire()));
        await sleep(STILL_WAITING_MS);
        expect(third.settled).toBe(false);
        expect(await lane.held()).toBe(2);
        await first.release();
        await within(third.promise, WAKE_MS, 'waiter after a release');
        expect(await lane.held()).toBe(2);
      });

      it('makes new acquires wait once the connection cap is lowered', async () => {
        const lane = limiter.lane('lowered', oneWindow(10, 1_000, 1, 3));
        await hold(lane.acquire());
        await hold(lane.acquire());
        await lane.update((state) => ({ ...state, connections: 2 }));
        const third = track(hold(lane.acquire()));
        await sleep(STILL_WAITING_MS);
        expect(third.settled).toBe(false);
      });

      it('wakes waiters when the connection cap is raised', async () => {
        const lane = limiter.lane('raised', oneWindow(10, 1_000, 1, 3));
        await lane.update((state) => ({ ...state, connections: 1 }));
        await hold(lane.acquire());
        const second = track(hold(lane.acquire()));
        const third = track(hold(lane.acquire()));
        await sleep(STILL_WAITING_MS);
        expect(second.settled || third.settled).toBe(false);
        await lane.update((state) => ({ ...state, connections: 3 }));
        await within(Promise.all([second.promise, third.promise]), WAKE_MS, 'waiters after the cap rose');
        expect(await lane.held()).toBe(3);
      });

      it('serves local waiters first come, first served', async () => {
        const lane = limiter.lane('fifo', oneWindow(10, 1_000, 1, 1));
        const first = await hold(lane.acquire());
        const order: number[] = [];
        const waiting = [1, 2, 3].map((n) =>
          hold(lane.acquire()).then(async (lease) => {
            order.push(n);
            await sleep(5);
            await lease.release();
          }),
        );
        await sleep(20);
        await first.release();
        await within(Promise.all(waiting), 3 * WAKE_MS, 'three waiters in turn');
        expect(order).toEqual([1, 2, 3]);
      });

      it("rejects a waiting acquire with the signal's reason on abort, and leaks no slot", async () => {
        const lane = limiter.lane('abort', oneWindow(10, 1_000, 1, 1));
        const first = await hold(lane.acquire());
        const controller = new AbortController();
        const reason = new Error('stop waiting');
        const waiting = lane.acquire(controller.signal);
        await sleep(STILL_WAITING_MS);
        controller.abort(reason);
        await expect(waiting).rejects.toBe(reason);
        expect(await lane.held()).toBe(1);
        await first.release();
        expect(await lane.held()).toBe(0);
        await within(hold(lane.acquire()), WAKE_MS, 'acquire after an aborted waiter');
        expect(await lane.held()).toBe(1);
      });

      it("rejects at once with the signal's reason when the signal is already aborted", async () => {
        const lane = limiter.lane('aborted', oneWindow(10, 1_000, 1, 1));
        const reason = new Error('aborted before');
        // Wrapped in an async function: callers await acquire(), so a synchronous throw reaches them the same way.
        await expect((async () => lane.acquire(AbortSignal.abort(reason)))()).rejects.toBe(reason);
        expect(await lane.held()).toBe(0);
      });
    });

    describe('held()', () => {
      it('counts the slots held, and a lease released twice counts once', async () => {
        const lane = limiter.lane('held', oneWindow(10, 1_000, 1, 3));
        expect(await lane.held()).toBe(0);
        const first = await hold(lane.acquire());
        await hold(lane.acquire());
        expect(await lane.held()).toBe(2);
        await first.release();
        await first.release();
        expect(await lane.held()).toBe(1);
      });
    });

    describe('state() and update()', () => {
      // A process's share of a lane while Redis is away is a memory lane with a smaller cap, and
      // learns transitions computed for the whole lane's: they must not raise it past its own.
      it('bounds the connections of the state by the spec, whatever a transition writes', async () => {
        const lane = limiter.lane('bounded', oneWindow(10, 1_000, 1, 1));
        expect((await lane.update((state) => ({ ...state, connections: 5 }))).connections).toBe(1);
        expect((await lane.state()).connections).toBe(1);
        await hold(lane.acquire());
        const second = track(hold(lane.acquire()));
        await sleep(STILL_WAITING_MS);
        expect(second.settled).toBe(false);
      });

      it('starts from the initial state of the spec', async () => {
        const spec = oneWindow(10, 1_000, 1, 4);
        expect(await limiter.lane('initial', spec).state()).toEqual(initialState(spec));
      });

      it('stores every field of the state and returns what it wrote', async () => {
        const lane = limiter.lane('fields', oneWindow(10, 1_000, 1, 4));
        const written: AdaptiveState = {
          rateFactor: 0.123456789,
          connections: 2.718281828,
          pausedUntil: 1_000.5,
          pauseReason: 'quota',
          stopped: 'auth: 535 5.7.8',
          lastDecreaseAt: 999.25,
          ceiling: 0.4567,
        };
        expect(await lane.update(() => written)).toEqual(written);
        expect(await lane.state()).toEqual(written);
        const cleared = await lane.update((state) => ({ ...state, pauseReason: null, stopped: null }));
        expect(cleared).toEqual({ ...written, pauseReason: null, stopped: null });
        expect(await lane.state()).toEqual(cleared);
      });

      it('passes the limiter clock to the transition', async () => {
        const lane = limiter.lane('clock', oneWindow(10, 1_000));
        let seen = Number.NaN;
        await lane.update((_, now) => {
          seen = now;
          return null;
        });
        // Epoch milliseconds, near this host's clock (the Redis limiter reads the server's).
        expect(Math.abs(seen - Date.now())).toBeLessThan(60_000);
      });

      it('writes nothing when the transition returns null, and returns the current state', async () => {
        const spec = oneWindow(10, 1_000, 1, 4);
        const lane = limiter.lane('null', spec);
        const before = await lane.update((state) => ({ ...state, connections: 3 }));
        expect(await lane.update(() => null)).toEqual(before);
        expect(await lane.state()).toEqual(before);
      });

      it('applies concurrent updates atomically: none is lost', async () => {
        const lane = limiter.lane('concurrent', oneWindow(10, 1_000, 1, 10));
        await Promise.all(Array.from({ length: 20 }, () => lane.update((state) => ({ ...state, connections: state.connections - 0.01 }))));
        expect((await lane.state()).connections).toBeCloseTo(9.8, 9);
      });
    });
  });
}
