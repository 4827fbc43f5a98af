import { describe, expect, it } from 'vitest';
import { backoffDelay, consumesRetry, isRetryable, retryDelay } from '../../src/retry/backoff.js';

const options = { minDelay: 1_000, maxDelay: 60_000, factor: 2, greylistDelay: 300_000 };

describe('backoffDelay', () => {
  it('grows exponentially: the n-th retry waits between minDelay and minDelay * factor^(n+1)', () => {
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, options, () => 1))).toEqual([2_000, 4_000, 8_000, 16_000]);
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, options, () => 0))).toEqual([1_000, 1_000, 1_000, 1_000]);
  });

  it('never exceeds maxDelay', () => {
    expect(backoffDelay(20, options, () => 1)).toBe(60_000);
    expect(backoffDelay(1_000, options, () => 0.999)).toBeLessThanOrEqual(60_000);
  });

  it('spreads retries uniformly (full jitter) between the bounds', () => {
    const samples = Array.from({ length: 2_000 }, () => backoffDelay(3, options));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(16_000);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(7_000); // uniform on [1000, 16000] has mean 8500
    expect(mean).toBeLessThan(10_000);
  });
});

describe('retryDelay', () => {
  it('waits the greylist delay for greylisting and recipient throttling, or the delay the reply names', () => {
    expect(retryDelay({ kind: 'greylisted' }, 0, options)).toBe(300_000);
    expect(retryDelay({ kind: 'recipient-throttled' }, 5, options)).toBe(300_000);
    expect(retryDelay({ kind: 'greylisted', retryAfterMs: 60_000 }, 0, options)).toBe(60_000);
  });

  it('honours a named delay as a lower bound of the backoff', () => {
    expect(retryDelay({ kind: 'rate-limited', retryAfterMs: 600_000 }, 0, options, () => 0)).toBe(600_000);
    expect(retryDelay({ kind: 'transient', retryAfterMs: 10 }, 2, options, () => 1)).toBe(8_000);
  });
});

describe('which failures retry and which use up a retry', () => {
  it('never retries permanent and auth failures', () => {
    expect(isRetryable({ kind: 'permanent' })).toBe(false);
    expect(isRetryable({ kind: 'auth' })).toBe(false);
    for (const kind of ['rate-limited', 'connection-limited', 'greylisted', 'recipient-throttled', 'quota-exceeded', 'transient'] as const) {
      expect(isRetryable({ kind })).toBe(true);
    }
  });

  it('does not count a refused connection or a quota pause against the message', () => {
    expect(consumesRetry({ kind: 'connection-limited' })).toBe(false);
    expect(consumesRetry({ kind: 'quota-exceeded' })).toBe(false);
    expect(consumesRetry({ kind: 'rate-limited' })).toBe(true);
    expect(consumesRetry({ kind: 'greylisted' })).toBe(true);
  });
});
