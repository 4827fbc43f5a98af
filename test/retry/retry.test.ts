import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AttemptFailure } from '../../src/retry/attempt-failure.js';
import { Deadline, RetryStopped, withRetry, type RetryInfo } from '../../src/retry/retry.js';
import type { DecisionKind } from '../../src/smtp/decision.js';

const retry = { retries: 3, minDelay: 1_000, maxDelay: 60_000, factor: 2, greylistDelay: 300_000, maxRetryTime: 3_600_000 };
const failure = (kind: DecisionKind, retryAfterMs?: number) =>
  new AttemptFailure(retryAfterMs === undefined ? { kind } : { kind, retryAfterMs }, { lane: 'main', responseCode: 421, response: `421 ${kind}` });

/** Runs the loop under fake timers, answering each attempt from `script`, and records the waits it schedules. */
async function run(script: Array<AttemptFailure | 'ok'>, overrides: Partial<typeof retry> = {}) {
  const retries: RetryInfo[] = [];
  const calls: number[] = [];
  const promise = withRetry(
    async ({ attempt }) => {
      calls.push(Date.now());
      const step = script[attempt - 1] ?? 'ok';
      if (step === 'ok') return 'sent';
      throw step;
    },
    { retry: { ...retry, ...overrides }, random: () => 0.5, onRetry: (info) => retries.push(info) },
  );
  const settled = promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  await vi.runAllTimersAsync();
  return { result: await settled, retries, calls };
}

describe('withRetry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0, toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('schedules jittered exponential delays and stops after the first success', async () => {
    const { result, retries, calls } = await run([failure('transient'), failure('transient'), 'ok']);
    expect(result).toEqual({ value: { value: 'sent', attempts: 3 } });
    // random() = 0.5: halfway between minDelay and minDelay * 2^(n+1)
    expect(retries.map((r) => r.delayMs)).toEqual([1_500, 2_500]);
    expect(calls).toEqual([0, 1_500, 4_000]);
    expect(retries.map((r) => r.retriesLeft)).toEqual([2, 1]);
  });

  it('gives up after `retries` retries with the last failure', async () => {
    const { result, retries } = await run([failure('transient'), failure('transient'), failure('transient'), failure('rate-limited')]);
    const error = (result as { error: RetryStopped }).error;
    expect(error).toBeInstanceOf(RetryStopped);
    expect(error.reason).toBe('retries-exhausted');
    expect(error.attempts).toBe(4);
    expect(error.failure.decision.kind).toBe('rate-limited');
    expect(retries).toHaveLength(3);
  });

  it('never retries permanent or auth failures', async () => {
    for (const kind of ['permanent', 'auth'] as const) {
      const { result, retries, calls } = await run([failure(kind)]);
      expect((result as { error: RetryStopped }).error.reason).toBe('not-retryable');
      expect(retries).toHaveLength(0);
      expect(calls).toHaveLength(1);
    }
  });

  it('waits greylistDelay after greylisting, or the delay the reply names', async () => {
    const { calls } = await run([failure('greylisted'), failure('greylisted', 60_000), 'ok']);
    expect(calls).toEqual([0, 300_000, 360_000]);
  });

  describe('a plain 450/451 (greylisting that does not say so)', () => {
    const deferral = (code: number, response = `${code} 4.7.1 Please try again later`) => new AttemptFailure({ kind: 'transient' }, { lane: 'main', responseCode: code, response });

    it('waits until greylistDelay has passed since the first deferral before the last retry, and only the last', async () => {
      for (const code of [450, 451]) {
        vi.setSystemTime(0);
        const { result, retries, calls } = await run([deferral(code), deferral(code), deferral(code), 'ok']);
        expect(result).toEqual({ value: { value: 'sent', attempts: 4 } });
        // Backoff (1.5 s, 2.5 s) for the first two; the third (the last of `retries: 3`) waits until 300 s after the first deferral.
        expect(calls).toEqual([0, 1_500, 4_000, 300_000]);
        expect(retries.map((r) => r.delayMs)).toEqual([1_500, 2_500, 296_000]);
      }
    });

    it('counts from the first deferral even when other failures came between', async () => {
      const { calls } = await run([failure('transient'), deferral(451), failure('transient'), deferral(450), 'ok'], { retries: 4 });
      expect(calls).toEqual([0, 1_500, 4_000, 8_500, 301_500]);
    });

    it('keeps the backoff when it is longer, or when the last failure is not a deferral', async () => {
      const longer = await run([deferral(451), deferral(451), 'ok'], { retries: 2, greylistDelay: 1_000 });
      expect(longer.calls).toEqual([0, 1_500, 4_000]);
      vi.setSystemTime(0);
      const other = await run([deferral(451), deferral(451), failure('transient'), 'ok']);
      expect(other.calls).toEqual([0, 1_500, 4_000, 8_500]);
      const named = new AttemptFailure({ kind: 'greylisted' }, { lane: 'main', responseCode: 451, response: '451 4.7.1 Greylisted' });
      vi.setSystemTime(0);
      const greylisted = await run([named, named, 'ok'], { retries: 2, greylistDelay: 10_000 });
      expect(greylisted.calls).toEqual([0, 10_000, 20_000]);
    });

    it('stays within maxRetryTime: the last retry comes just before the deadline', async () => {
      const { result, calls } = await run([deferral(451), deferral(451), deferral(451), 'ok'], { maxRetryTime: 120_000 });
      expect(result).toEqual({ value: { value: 'sent', attempts: 4 } });
      expect(calls).toEqual([0, 1_500, 4_000, 119_999]);
    });
  });

  it('does not count refused connections against retries, but stops at maxRetryTime', async () => {
    const refusals = Array.from({ length: 10 }, () => failure('connection-limited'));
    const ok = await run([...refusals, 'ok'], { retries: 1 });
    expect(ok.result).toEqual({ value: { value: 'sent', attempts: 11 } });
    expect(ok.retries.every((r) => r.retriesLeft === 1)).toBe(true);

    const forever = Array.from({ length: 500 }, () => failure('connection-limited'));
    const stopped = await run(forever, { retries: 1, maxRetryTime: 30_000, maxDelay: 4_000 });
    const error = (stopped.result as { error: RetryStopped }).error;
    expect(error.reason).toBe('deadline');
    expect(stopped.calls.length).toBeGreaterThan(5);
    expect(stopped.calls.at(-1)! - stopped.calls[0]!).toBeLessThanOrEqual(30_000);
  });

  it('lets refused connections and quota pauses through even with retries: 0', async () => {
    const { result } = await run([failure('connection-limited'), failure('quota-exceeded', 1_000), failure('connection-limited'), 'ok'], { retries: 0 });
    expect(result).toEqual({ value: { value: 'sent', attempts: 4 } });
    const none = await run([failure('transient'), 'ok'], { retries: 0 });
    expect((none.result as { error: RetryStopped }).error.reason).toBe('retries-exhausted');
  });

  it('does not count a quota pause against maxRetryTime, however long the pause', async () => {
    const day = 86_400_000;
    const { result, calls } = await run([failure('quota-exceeded', day), failure('quota-exceeded', day), 'ok'], { maxRetryTime: 60_000 });
    expect(result).toEqual({ value: { value: 'sent', attempts: 3 } });
    expect(calls).toEqual([0, day, 2 * day]);
  });

  it('moves the deadline by the quota pause an attempt reports waiting through', async () => {
    const hour = 3_600_000;
    const waitInPausedLane = async (extend: boolean) => {
      const calls: Array<{ at: number; deadline: number }> = [];
      const promise = withRetry(
        async ({ attempt, deadline, paused }) => {
          calls.push({ at: Date.now(), deadline });
          if (attempt > 1) return 'sent';
          // The lane was paused for its quota for two hours before the attempt went, and failed.
          await new Promise((resolve) => setTimeout(resolve, 2 * hour));
          if (extend) paused(2 * hour);
          throw failure('transient');
        },
        { retry: { ...retry, maxRetryTime: hour }, random: () => 0.5 },
      ).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      await vi.runAllTimersAsync();
      return { result: await promise, calls };
    };
    const extended = await waitInPausedLane(true);
    expect(extended.result).toEqual({ value: { value: 'sent', attempts: 2 } });
    expect(extended.calls.map((c) => c.deadline)).toEqual([hour, 3 * hour]);
    const plain = await waitInPausedLane(false);
    expect((plain.result as { error: RetryStopped }).error.reason).toBe('deadline');
  });

  it('gives up instead of waiting past maxRetryTime', async () => {
    const { result, calls } = await run([failure('greylisted'), 'ok'], { maxRetryTime: 60_000 });
    expect((result as { error: RetryStopped }).error.reason).toBe('deadline');
    expect(calls).toEqual([0]);
  });

  it('lets loops that share a deadline (the parts of one message) retry only within it', async () => {
    // The first part of a message takes 40 s to go through (two retries); the second then has the
    // 20 s left of the message's 60 s, not 60 s of its own.
    const clock = new Deadline(60_000);
    const loop = (script: Array<AttemptFailure | 'ok'>) => {
      const calls: number[] = [];
      const promise = withRetry(
        async ({ attempt, deadline }) => {
          calls.push(deadline);
          const step = script[attempt - 1] ?? 'ok';
          if (step === 'ok') return 'sent';
          throw step;
        },
        { retry: { ...retry, maxRetryTime: 60_000 }, random: () => 0.5, deadline: clock },
      );
      return { calls, settled: promise.then((value) => ({ value }), (error: unknown) => ({ error })) };
    };
    const first = loop([failure('transient', 20_000), failure('transient', 20_000), 'ok']);
    await vi.runAllTimersAsync();
    expect(await first.settled).toEqual({ value: { value: 'sent', attempts: 3 } });
    expect(Date.now()).toBe(40_000);
    const second = loop([failure('transient', 25_000), 'ok']);
    await vi.runAllTimersAsync();
    const error = ((await second.settled) as { error: RetryStopped }).error;
    expect(error.reason).toBe('deadline');
    expect(second.calls).toEqual([60_000]);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    const promise = withRetry(
      async () => {
        throw failure('transient');
      },
      { retry, signal: controller.signal },
    ).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('stop'));
    await vi.runAllTimersAsync();
    expect(((await promise) as Error).message).toBe('stop');
  });

  it('counts the attempts, the first one made outside p-retry and the others through it', async () => {
    const once = await run(['ok']);
    expect(once.result).toEqual({ value: { value: 'sent', attempts: 1 } });
    expect(once.retries).toEqual([]);
    const third = await run([failure('transient'), failure('rate-limited'), 'ok']);
    expect(third.result).toEqual({ value: { value: 'sent', attempts: 3 } });
    expect(third.retries.map((r) => r.attempt)).toEqual([1, 2]);
  });

  it('does not retry what is not an AttemptFailure (a bug), on the first attempt or a later one', async () => {
    const bug = new TypeError('mail.to.map is not a function');
    for (const failFirst of [0, 1]) {
      let calls = 0;
      const promise = withRetry(
        async () => {
          calls++;
          if (calls <= failFirst) throw failure('transient');
          throw bug;
        },
        { retry, random: () => 0.5 },
      ).catch((error: unknown) => error);
      await vi.runAllTimersAsync();
      expect(await promise).toBe(bug);
      expect(calls).toBe(failFirst + 1);
    }
  });

  it('after an abort, stops with what the server said when it settles the message (refused, in doubt); otherwise with the abort', async () => {
    const inDoubt = new AttemptFailure({ kind: 'transient' }, { lane: 'main', inDoubt: true, response: 'Connection closed unexpectedly' });
    const outcomes: unknown[] = [];
    for (const last of [inDoubt, failure('permanent'), failure('transient')]) {
      const controller = new AbortController();
      const error = await withRetry(
        async () => {
          controller.abort(new Error('stop')); // while the attempt was on the wire
          throw last;
        },
        { retry, signal: controller.signal },
      ).catch((e: unknown) => e);
      outcomes.push(error instanceof RetryStopped ? error.reason : (error as Error).message);
    }
    expect(outcomes).toEqual(['in-doubt', 'not-retryable', 'stop']);
  });

  it('makes no attempt when the signal has already aborted', async () => {
    let calls = 0;
    const error = await withRetry(
      async () => {
        calls++;
        return 'sent';
      },
      { retry, signal: AbortSignal.abort(new Error('closed')) },
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('closed');
    expect(calls).toBe(0);
  });
});
