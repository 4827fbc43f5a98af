/**
 * The longest delay a Node.js timer takes (about 24.8 days). A longer one fires after 1 ms instead,
 * with a TimeoutOverflowWarning: a server that names a delay of 30 days would otherwise be retried,
 * or woken for, every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Resolves after `ms` (any length: longer than a timer takes, in steps); rejects with the reason of
 * `signal`, or of `other`, when one aborts first (two signals without the cost of `AbortSignal.any`).
 */
export function sleep(ms: number, signal?: AbortSignal, other?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (other?.aborted) return Promise.reject(other.reason);
  if (!(ms > 0)) return Promise.resolve();
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout;
    const stop = () => {
      signal?.removeEventListener('abort', onAbort);
      other?.removeEventListener('abort', onAbort);
    };
    function onAbort(this: AbortSignal) {
      clearTimeout(timer);
      stop();
      reject(this.reason);
    }
    const arm = (wait: number) => {
      timer = setTimeout(() => {
        // Only a wait longer than one timer takes goes on in another step.
        if (wait > MAX_TIMER_MS) return arm(Math.max(1, until - Date.now()));
        stop();
        resolve();
      }, Math.min(wait, MAX_TIMER_MS));
    };
    arm(ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    other?.addEventListener('abort', onAbort, { once: true });
  });
}
