/**
 * The longest delay a Node.js timer takes (about 24.8 days). A longer one fires after 1 ms instead,
 * with a TimeoutOverflowWarning: a server that names a delay of 30 days would otherwise be retried,
 * or woken for, every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `ms` (any length: longer than a timer takes, in steps); rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (!(ms > 0)) return Promise.resolve();
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const arm = (wait: number) => {
      timer = setTimeout(() => {
        // Only a wait longer than one timer takes goes on in another step.
        if (wait > MAX_TIMER_MS) return arm(Math.max(1, until - Date.now()));
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.min(wait, MAX_TIMER_MS));
    };
    arm(ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
