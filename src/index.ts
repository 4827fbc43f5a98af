// Every public export, by name.
export { createMailer } from './mailer.js';
export type { Mailer, SendOptions, SendResult } from './mailer.js';
export type { Message } from './message.js';
export type { BatchOptions, BatchReport, BatchFailure, BatchSource } from './batch/batch.js';
export { classifySmtpError } from './smtp/classify.js';
export type { Decision, DecisionKind, SmtpErrorLike } from './smtp/decision.js';
export {
  MailpacerError,
  ConfigError,
  DeliveryError,
  AbortedError,
  RedisUnavailableError,
  BatchSourceError,
  isMailpacerError,
  isConfigError,
  isDeliveryError,
  isAbortedError,
  isBatchSourceError,
} from './errors.js';
export type { ConfigIssue, MailpacerErrorCode } from './errors.js';
export type {
  MailerEvents,
  MailerEventName,
  MailerHooks,
  RetryEvent,
  ThrottleEvent,
  SentEvent,
  FailedEvent,
  ProgressEvent,
  ErrorEvent,
} from './events.js';
export type { MailerOptionsInput as MailerOptions, ProviderOptions, RateWindow, DestinationOptions } from './config/schema.js';
export type { LaneStats } from './lanes/lane.js';
export { parseDuration } from './config/duration.js';
export { presets } from './config/presets.js';
export { builtinDestinations } from './config/destinations.js';
export type { PresetConfig, PresetAuth, PresetTransport } from './config/presets.js';
