import type { Decision } from '../smtp/decision.js';

export interface BackoffOptions {
  minDelay: number;
  maxDelay: number;
  factor: number;
  greylistDelay: number;
}

/**
 * Exponential backoff with full jitter: the `n`-th retry (from 0) waits a uniformly random time
 * between `minDelay` and `min(maxDelay, minDelay * factor ** (n + 1))`. Jitter spreads the retries
 * of a throttled batch so that they do not come back as one burst.
 */
export function backoffDelay(n: number, options: Pick<BackoffOptions, 'minDelay' | 'maxDelay' | 'factor'>, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelay, options.minDelay * options.factor ** (n + 1));
  return Math.round(options.minDelay + random() * Math.max(0, ceiling - options.minDelay));
}

/**
 * How long to wait before retrying after `decision`. `n` counts the retries of the same sort so
 * far: retries that use up `retries` for most kinds, refusals in a row for `connection-limited`.
 */
export function retryDelay(decision: Decision, n: number, options: BackoffOptions, random: () => number = Math.random): number {
  switch (decision.kind) {
    case 'greylisted':
    case 'recipient-throttled':
      // The receiver wants this message later; how soon does not depend on how often it said so.
      return decision.retryAfterMs ?? options.greylistDelay;
    case 'quota-exceeded':
      // The lane is paused until its quota admits again; the message waits in the lane.
      return decision.retryAfterMs ?? options.minDelay;
    default:
      return Math.max(decision.retryAfterMs ?? 0, backoffDelay(n, options, random));
  }
}

/** Whether a failure with this decision uses up one of the message's `retries`. */
export function consumesRetry(decision: Decision): boolean {
  // A refused connection never reached the message; a quota pause is the account's, not the message's.
  return decision.kind !== 'connection-limited' && decision.kind !== 'quota-exceeded';
}

/** Whether a failure with this decision is retried at all. */
export function isRetryable(decision: Decision): boolean {
  return decision.kind !== 'permanent' && decision.kind !== 'auth';
}
