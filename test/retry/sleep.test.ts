import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, sleep } from '../../src/retry/sleep.js';

const DAY = 86_400_000;

afterEach(() => {
  vi.useRealTimers();
});

describe('sleep', () => {
  // A Node.js timer longer than 2^31 - 1 ms fires after 1 ms: a named delay of 30 days would end at once.
  it('waits out a delay longer than one timer takes, in steps', async () => {
    vi.useFakeTimers();
    let done = false;
    void sleep(30 * DAY).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(30 * DAY - MAX_TIMER_MS - 1_000 - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('ends a long wait when its signal aborts', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const waiting = sleep(30 * DAY, controller.signal);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 5);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(vi.getTimerCount()).toBe(0);
  });
});
