import pRetry, { AbortError } from 'p-retry';
import type { RetryConfig } from '../config/schema.js';
import { AttemptFailure } from './attempt-failure.js';
import { consumesRetry, isRetryable, retryDelay } from './backoff.js';
import { sleep } from './sleep.js';
import type { Decision } from '../smtp/decision.js';

export interface AttemptContext {
  /** The attempt, from 1. */
  attempt: number;
  /**
   * Epoch ms after which the message must not wait any longer: first attempt + `maxRetryTime`,
   * plus every quota pause it waited through so far.
   */
  deadline: number;
  /**
   * Reports time this attempt spent waiting for a quota pause (the account's, not the message's):
   * it moves the deadline later by `ms`, as it does not count against `maxRetryTime`.
   */
  paused(ms: number): void;
}

export interface RetryInfo {
  attempt: number;
  retriesLeft: number;
  delayMs: number;
  failure: AttemptFailure;
}

export interface RetryLoopOptions {
  retry: Pick<RetryConfig, 'retries' | 'minDelay' | 'maxDelay' | 'factor' | 'greylistDelay' | 'maxRetryTime'>;
  signal?: AbortSignal | undefined;
  /** Called before each wait, with the delay chosen. */
  onRetry?: (info: RetryInfo) => void;
  /** Retry an attempt whose outcome is unknown (the server may have accepted it). @default false */
  resendInDoubt?: boolean;
  /** Stop with reason `'split'` when the server takes fewer recipients: the caller sends the envelope in parts. */
  canSplit?: boolean;
  random?: () => number;
  now?: () => number;
  /**
   * The message's deadline, when several loops share it (a message sent in parts: every part
   * within the one `maxRetryTime`). By default each loop has its own, from its first attempt.
   */
  deadline?: Deadline | undefined;
  /**
   * The first attempt was made by the caller (with `deadline`'s time) and failed with `error`: the
   * loop starts from its failure, as if it had made it. The abort check before it is the caller's too.
   */
  firstFailed?: { error: unknown } | undefined;
}

/** Why the loop stopped without a success: the last failure and how many attempts it took. */
export class RetryStopped extends Error {
  override name = 'RetryStopped' as const;
  constructor(
    readonly failure: AttemptFailure,
    readonly attempts: number,
    readonly reason: 'not-retryable' | 'retries-exhausted' | 'deadline' | 'in-doubt' | 'split',
  ) {
    super(failure.message, { cause: failure });
  }
}

/**
 * Runs `attempt` until it succeeds. The first attempt runs on its own (most messages need no
 * other, and p-retry's setup costs more than the attempt's own bookkeeping); from the first
 * failure on, p-retry runs the loop and counts attempts. The deadline (`maxRetryTime`, moved later
 * by quota pauses) and the delay are ours: the delay (`retryDelay`) depends on what the server said
 * (greylisting, a named delay, a refused connection), and p-retry only knows exponential steps.
 * Throws `RetryStopped` when it gives up, or the signal's reason when aborted.
 */
export function withRetry<T>(attempt: (context: AttemptContext) => Promise<T>, options: RetryLoopOptions): Promise<{ value: T; attempts: number }> {
  const clock = options.deadline ?? new Deadline((options.now ?? Date.now)() + options.retry.maxRetryTime);
  if (options.firstFailed) return retryAfterFirst(options.firstFailed.error, attempt, options, clock);
  // The first attempt, inline (a `then` on its promise: one step fewer per message than an async function).
  if (options.signal?.aborted) return Promise.reject(toError(options.signal.reason));
  let first: Promise<T>;
  try {
    first = attempt({ attempt: 1, deadline: clock.at, paused: clock.paused });
  } catch (error) {
    first = Promise.reject(error);
  }
  return first.then(once, (error: unknown) => retryAfterFirst(error, attempt, options, clock));
}

/** Goes on after a first attempt that failed with `error`: an `AttemptFailure` is retried, anything else ends the loop. */
function retryAfterFirst<T>(error: unknown, attempt: (context: AttemptContext) => Promise<T>, options: RetryLoopOptions, clock: Deadline): Promise<{ value: T; attempts: number }> {
  if (!(error instanceof AttemptFailure)) return Promise.reject(toError(error));
  return retryAfter(error, attempt, options, clock);
}

const once = <T>(value: T) => ({ value, attempts: 1 });

/** A message's retry deadline (epoch ms), which quota pauses move later. */
export class Deadline {
  constructor(public at: number) {}
  /** Bound, so that it can be handed to an attempt as it is. */
  paused = (ms: number): void => {
    if (ms > 0) this.at += ms;
  };

  /**
   * Whether the message may wait `delayMs` for the retry `decision` calls for. A quota pause is the
   * account's: the message waits it out, and the wait moves the deadline instead of counting.
   */
  allows(decision: Decision, delayMs: number, now: number): boolean {
    if (decision.kind === 'quota-exceeded') {
      this.paused(delayMs);
      return true;
    }
    return now + delayMs < this.at;
  }
}

/** The loop after a first failed attempt. */
async function retryAfter<T>(first: AttemptFailure, attempt: (context: AttemptContext) => Promise<T>, options: RetryLoopOptions, clock: Deadline): Promise<{ value: T; attempts: number }> {
  const { retry } = options;
  const now = options.now ?? Date.now;
  let attempts = 1;
  let consumed = 0;
  let refusals = 0;
  // When the server first deferred the message with a plain 450/451 (see `isDeferral`).
  let deferredSince: number | undefined;

  /** Decides after a failed attempt: throws `RetryStopped` to give up, or waits the delay before the next. */
  const afterFailure = async (failure: AttemptFailure): Promise<void> => {
    const { decision } = failure;
    // What the server said stands though the signal aborted while it said it: an abort only
    // cancels waiting and retrying. A message that may have been accepted is in doubt, not
    // pending (a pending one would be sent again).
    if (failure.tooManyRecipients && options.canSplit) throw new RetryStopped(failure, attempts, 'split');
    if (!isRetryable(decision)) throw new RetryStopped(failure, attempts, 'not-retryable');
    // Sending again could deliver it twice: only when asked. Nor is it pending when the signal
    // stopped its retry: it may have arrived.
    if (failure.inDoubt && (!options.resendInDoubt || options.signal?.aborted)) throw new RetryStopped(failure, attempts, 'in-doubt');
    if (options.signal?.aborted) throw options.signal.reason;
    const consumes = consumesRetry(decision);
    const retriesLeft = retry.retries - consumed;
    if (consumes && retriesLeft <= 0) throw new RetryStopped(failure, attempts, 'retries-exhausted');
    let delayMs = retryDelay(decision, consumes ? consumed : refusals, retry, options.random);
    const at = now();
    if (isDeferral(failure)) {
      deferredSince ??= at;
      // The last retry comes no sooner than greylistDelay after the first deferral, within the
      // deadline: a greylisting server that does not say so gets one attempt after its window.
      if (consumes && retriesLeft === 1) delayMs = Math.max(delayMs, Math.min(deferredSince + retry.greylistDelay, clock.at - 1) - at);
    }
    if (!clock.allows(decision, delayMs, at)) throw new RetryStopped(failure, attempts, 'deadline');
    if (consumes) consumed++;
    else if (decision.kind === 'connection-limited') refusals++;
    options.onRetry?.({ attempt: attempts, retriesLeft: consumes ? retriesLeft - 1 : retriesLeft, delayMs, failure });
    await sleep(delayMs, options.signal);
  };

  await afterFailure(first);

  // Every later attempt, through p-retry; anything thrown but an `AttemptFailure` is a bug or an abort, and ends the loop.
  const later = async (attemptNumber: number): Promise<T> => {
    attempts = attemptNumber + 1;
    if (options.signal?.aborted) throw new AbortError(toError(options.signal.reason));
    try {
      return await attempt({ attempt: attempts, deadline: clock.at, paused: clock.paused });
    } catch (error) {
      if (error instanceof AttemptFailure) throw error;
      throw new AbortError(toError(error));
    }
  };
  const run = pRetry(later, {
    // Retries are counted here: p-retry stops at zero retries left even for failures that do not
    // use one up (a refused connection, a quota pause), which must not end a message.
    retries: Number.POSITIVE_INFINITY,
    // The delay is applied in onFailedAttempt; p-retry's own is zero. No maxRetryTime either: the
    // deadline moves with quota pauses, and afterFailure enforces it.
    minTimeout: 0,
    maxTimeout: 0,
    // No `signal` for p-retry: it would throw away a success that lands after an abort, and a
    // message the server accepted must be reported sent. Aborts are handled here instead.
    shouldRetry: ({ error }) => isRetryable((error as AttemptFailure).decision),
    onFailedAttempt: ({ error }) => afterFailure(error as AttemptFailure),
  });
  return { value: await run, attempts };
}

/**
 * A `transient` 450 or 451: the server answered and deferred the message without saying why in
 * words the classifier knows. Greylisting often looks like this ("451 4.7.1 Please try again
 * later"), and its window (commonly 5 minutes) can outlast the backoff's retries (with the
 * defaults they wait 259 s in all on average, the sum of the midpoints, and 510 s at most), so
 * the last retry waits it out.
 */
function isDeferral(failure: AttemptFailure): boolean {
  return failure.decision.kind === 'transient' && (failure.responseCode === 450 || failure.responseCode === 451);
}

const toError = (value: unknown): Error => (value instanceof Error ? value : new Error(String(value)));
