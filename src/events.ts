import type { DeliveryError } from './errors.js';
import type { DecisionKind } from './smtp/decision.js';

/** A message's recipients, as addresses (no display names). */
export type Recipients = readonly string[];

/** A failed attempt that will be retried. */
export interface RetryEvent {
  /** The attempt that failed, from 1. Refused connections count here too. */
  attempt: number;
  /** Retries left; refused connections and quota pauses do not use them up. */
  retriesLeft: number;
  /** How long until the next attempt, in milliseconds. */
  delayMs: number;
  decision: DecisionKind;
  responseCode: number | undefined;
  response: string | undefined;
  provider: string;
  /** The lane (provider × destination group) that made the attempt. */
  lane: string;
  /** The message's `id`, when it has one. */
  messageId: string | undefined;
  recipients: Recipients;
}

/** A lane slowed down, opened fewer connections, paused or stopped. (Recovery is gradual and silent: read `stats()`.) */
export interface ThrottleEvent {
  provider: string;
  lane: string;
  /** What the lane did. */
  action: 'slow-down' | 'fewer-connections' | 'pause' | 'stop';
  /** The reply that caused it. */
  decision: DecisionKind;
  responseCode: number | undefined;
  response: string | undefined;
  /** The lane's effective rate now, sends per second of its tightest window (`Infinity` when unlimited). */
  rate: number;
  /** The lane's effective connection cap now. */
  connections: number;
  /** Epoch ms until which the lane is paused, or 0. */
  pausedUntil: number;
}

/** A message was accepted by the server (a 250 after DATA). */
export interface SentEvent {
  provider: string;
  lane: string;
  messageId: string | undefined;
  recipients: Recipients;
  /** Attempts it took, from 1. */
  attempts: number;
  /** The server's final reply. */
  response: string | undefined;
  /** Recipients the server refused while accepting the others. */
  rejected: Recipients;
  /** Time from the first attempt to the 250, in milliseconds. */
  durationMs: number;
}

/** A message failed for good. */
export interface FailedEvent {
  provider: string;
  lane: string;
  messageId: string | undefined;
  recipients: Recipients;
  error: DeliveryError;
}

/** A batch's progress, at a steady cadence while it runs. */
export interface ProgressEvent {
  batchId: string | undefined;
  /** Items taken from the source so far. */
  total: number;
  sent: number;
  failed: number;
  skipped: number;
  inDoubt: number;
  inFlight: number;
  /** Messages finished (sent, failed, skipped or in doubt) per second over the last few seconds. */
  ratePerSecond: number;
  /** Estimated milliseconds left, when the source's length is known. */
  etaMs: number | undefined;
  elapsedMs: number;
}

/** Something went wrong outside a single message: a hook threw, Redis went away. */
export interface ErrorEvent {
  error: Error;
  /** Where it happened, such as `hook:onRetry` or `redis`. */
  source: string;
}

/** Every event, by name. `hooks.onRetry` receives what `mailer.on('retry')` receives, and so on. */
export interface MailerEvents {
  retry: RetryEvent;
  throttle: ThrottleEvent;
  sent: SentEvent;
  failed: FailedEvent;
  progress: ProgressEvent;
  error: ErrorEvent;
}

export type MailerEventName = keyof MailerEvents;

/** The hook for each event: `onRetry` for `retry`, and so on. */
export type MailerHooks = {
  [K in MailerEventName as `on${Capitalize<K>}`]?: (event: MailerEvents[K]) => void | Promise<void>;
};

export const HOOK_NAMES: Record<MailerEventName, keyof MailerHooks> = {
  retry: 'onRetry',
  throttle: 'onThrottle',
  sent: 'onSent',
  failed: 'onFailed',
  progress: 'onProgress',
  error: 'onError',
};
