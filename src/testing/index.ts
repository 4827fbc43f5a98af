/**
 * `mailpacer/testing`: a real SMTP server that throttles like a busy receiver, for
 * tests, demos and benchmarks.
 *
 * @packageDocumentation
 */
export { startThrottlingSmtpServer } from './server.js';
export type {
  AcceptedCounts,
  AcceptedMessage,
  ScriptedReply,
  ThrottlingSmtpServer,
  ThrottlingSmtpServerOptions,
  ThrottlingSmtpServerStats,
  ThrottlingSmtpTransportOptions,
} from './types.js';
