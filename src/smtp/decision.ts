/**
 * What an SMTP reply (or a connection failure) means for the sender.
 *
 * - `rate-limited`: the server wants fewer messages per second; the lane slows down, the message retries.
 * - `connection-limited`: too many connections; the lane opens fewer, the message retries without using up a retry.
 * - `greylisted`: retry this message after the greylist delay; the lane keeps its pace.
 * - `recipient-throttled`: this recipient receives too fast; retry this message later, the lane keeps its pace.
 * - `quota-exceeded`: the account's quota is used up; the lane pauses until its window admits again.
 * - `transient`: any other temporary failure; retry with backoff.
 * - `permanent`: do not retry.
 * - `auth`: credentials refused; do not retry and stop the provider.
 */
export type DecisionKind =
  | 'rate-limited'
  | 'connection-limited'
  | 'greylisted'
  | 'recipient-throttled'
  | 'quota-exceeded'
  | 'transient'
  | 'permanent'
  | 'auth';

export const DECISION_KINDS: readonly DecisionKind[] = [
  'rate-limited',
  'connection-limited',
  'greylisted',
  'recipient-throttled',
  'quota-exceeded',
  'transient',
  'permanent',
  'auth',
];

export interface Decision {
  kind: DecisionKind;
  /** The delay the reply itself asks for ("try again in 5 minutes"), in milliseconds. */
  retryAfterMs?: number;
}

/** The fields of a nodemailer error that classification reads. Anything with some of them will do. */
export interface SmtpErrorLike {
  responseCode?: number | undefined;
  response?: string | undefined;
  code?: string | undefined;
  command?: string | undefined;
  message?: string | undefined;
}
