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

  it('ends when either of two signals aborts, with its reason, and leaves no listener on the other', async () => {
    vi.useFakeTimers();
    for (const which of [0, 1]) {
      const controllers = [new AbortController(), new AbortController()];
      const listening = [0, 0];
      controllers.forEach((c, i) => {
        const add = c.signal.addEventListener.bind(c.signal);
        const remove = c.signal.removeEventListener.bind(c.signal);
        c.signal.addEventListener = ((...args: Parameters<typeof add>) => (listening[i]!++, add(...args))) as typeof add;
        c.signal.removeEventListener = ((...args: Parameters<typeof remove>) => (listening[i]!--, remove(...args))) as typeof remove;
      });
      const waiting = sleep(60_000, controllers[0]!.signal, controllers[1]!.signal);
      await vi.advanceTimersByTimeAsync(1_000);
      controllers[which]!.abort(new Error(`stop ${which}`));
      await expect(waiting).rejects.toThrow(`stop ${which}`);
      expect(listening[1 - which]).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    }
    const both = [new AbortController(), new AbortController()];
    const done = sleep(1_000, both[0]!.signal, both[1]!.signal).then(() => 'slept');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await done).toBe('slept');
  });
});
