import type { BatchReport } from './batch/batch.js';
import type { DecisionKind } from './smtp/decision.js';

/** Stable machine-readable codes of every error mailpacer throws. */
export type MailpacerErrorCode =
  | 'ERR_MAILPACER_CONFIG'
  | 'ERR_MAILPACER_DELIVERY'
  | 'ERR_MAILPACER_CLOSED'
  | 'ERR_MAILPACER_ABORTED'
  | 'ERR_MAILPACER_REDIS'
  | 'ERR_MAILPACER_BATCH_SOURCE';

/** Base class of every error mailpacer throws. Check `code`, or use the `is*Error()` guards. */
export class MailpacerError extends Error {
  override name: string = 'MailpacerError';
  readonly code: MailpacerErrorCode;

  constructor(code: MailpacerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface ConfigIssue {
  /** Dotted path of the option, such as `providers.ses.rate[0].per`. */
  path: string;
  /** What was expected there. */
  message: string;
}

/** Bad options passed to `createMailer`. The message names each bad option and what was expected. */
export class ConfigError extends MailpacerError {
  override name = 'ConfigError' as const;
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super('ERR_MAILPACER_CONFIG', formatIssues(issues));
    this.issues = issues;
  }
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  const lines = issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message));
  return lines.length === 1 ? `Invalid mailpacer options: ${lines[0]}` : `Invalid mailpacer options:\n  - ${lines.join('\n  - ')}`;
}

export interface DeliveryErrorContext {
  decision: DecisionKind;
  /** SMTP reply code of the last attempt, when the server answered. */
  responseCode?: number | undefined;
  /** SMTP reply text of the last attempt (or the connection error's message). */
  response?: string | undefined;
  /** Attempts made, the refused connections that did not count against `retries` included. */
  attempts: number;
  /** Provider (lane) that made the last attempt. */
  provider: string;
  /** The message's `id`, when it had one. */
  messageId?: string | undefined;
  /** The server may have accepted it: the connection was lost after the whole message went out. */
  inDoubt?: boolean;
  /** Recipients the server accepted in earlier transactions of the message (sent in parts). */
  accepted?: readonly string[];
  cause?: unknown;
}

/** A message that could not be delivered: refused for good, or out of retries or time. */
export class DeliveryError extends MailpacerError {
  override name = 'DeliveryError' as const;
  readonly decision: DecisionKind;
  readonly responseCode: number | undefined;
  readonly response: string | undefined;
  readonly attempts: number;
  readonly provider: string;
  readonly messageId: string | undefined;
  readonly inDoubt: boolean;
  /**
   * Recipients that did get the message: a message sent in parts (recipients refused for now, or
   * too many for one transaction) can fail in a later part after earlier parts were accepted.
   * Empty when no part was accepted. Sending the message again would reach these twice.
   */
  readonly accepted: readonly string[];

  constructor(message: string, context: DeliveryErrorContext) {
    super('ERR_MAILPACER_DELIVERY', message, { cause: context.cause });
    this.decision = context.decision;
    this.responseCode = context.responseCode;
    this.response = context.response;
    this.attempts = context.attempts;
    this.provider = context.provider;
    this.messageId = context.messageId;
    this.inDoubt = context.inDoubt ?? false;
    this.accepted = context.accepted ?? [];
  }
}

/** The mailer was closed, or the send was aborted through its `signal`, before the message went out. */
export class AbortedError extends MailpacerError {
  override name = 'AbortedError' as const;
  /** `ERR_MAILPACER_CLOSED` when `close()` stopped it, `ERR_MAILPACER_ABORTED` when a signal did. */
  constructor(message: string, options?: { cause?: unknown; closed?: boolean }) {
    super(options?.closed ? 'ERR_MAILPACER_CLOSED' : 'ERR_MAILPACER_ABORTED', message, options);
  }
}

/** Redis could not be used (unreachable, or a script failed) and the send cannot wait any longer. */
export class RedisUnavailableError extends MailpacerError {
  override name = 'RedisUnavailableError' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_MAILPACER_REDIS', message, options);
  }
}

/**
 * The source of a `sendBatch` failed: its `next()` threw (a cursor that lost its database) or its
 * `return()` did. `sendBatch` rejects with it once every message it started has settled; `report`
 * counts them as a resolved batch would, and `cause` is the source's own error. With a batch `id`,
 * a re-run sends what was left.
 */
export class BatchSourceError extends MailpacerError {
  override name = 'BatchSourceError' as const;
  /** What the batch did before it stopped, every message it started settled. */
  readonly report: BatchReport;

  constructor(message: string, report: BatchReport, options: { cause: unknown }) {
    super('ERR_MAILPACER_BATCH_SOURCE', message, options);
    this.report = report;
  }
}

// Guards check `name` as well as `instanceof`, so that they work across realms and duplicate installs.
const hasName = (value: unknown, name: string): boolean =>
  typeof value === 'object' && value !== null && (value as { name?: unknown }).name === name;

export const isMailpacerError = (value: unknown): value is MailpacerError =>
  value instanceof MailpacerError ||
  (typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'string' && String((value as { code: string }).code).startsWith('ERR_MAILPACER_'));
export const isConfigError = (value: unknown): value is ConfigError => value instanceof ConfigError || hasName(value, 'ConfigError');
export const isDeliveryError = (value: unknown): value is DeliveryError => value instanceof DeliveryError || hasName(value, 'DeliveryError');
export const isAbortedError = (value: unknown): value is AbortedError => value instanceof AbortedError || hasName(value, 'AbortedError');
export const isBatchSourceError = (value: unknown): value is BatchSourceError => value instanceof BatchSourceError || hasName(value, 'BatchSourceError');
