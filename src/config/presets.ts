import { ConfigError } from '../errors.js';
import type { RateWindow } from './schema.js';

/**
 * Provider presets: SMTP settings and the sending limits each provider publishes, as plain data.
 *
 * Every number below is either published by the provider (the TSDoc names the page; docs/providers.md
 * has the URLs and the date they were read) or, where the provider publishes none, one of the two
 * conservative defaults below, marked "not published". Override anything by spreading:
 * `{ ...presets.sendgrid({ apiKey }), maxConnections: 20 }`.
 *
 * Credentials go into `transport.auth` and nowhere else; nothing here keeps a reference to them.
 */

/** SMTP credentials, handed to nodemailer as `transport.auth`: a password (app password, SMTP key), or OAuth2. */
export type PresetAuth =
  | { user: string; pass: string }
  | {
      type: 'OAuth2';
      user: string;
      accessToken?: string;
      clientId?: string;
      clientSecret?: string;
      refreshToken?: string;
      expires?: number;
    };

/** The nodemailer SMTP options a preset fills in. Spread it to change one key: `{ ...p.transport, port: 2525 }`. */
export interface PresetTransport {
  host: string;
  port: number;
  /** `true`: TLS from the first byte (465). `false`: plain connection upgraded with STARTTLS. */
  secure: boolean;
  /** Refuse to send (and to authenticate) unless the server upgrades the connection with STARTTLS. */
  requireTLS?: boolean;
  auth?: PresetAuth;
}

/** What a preset returns: a provider config (`ProviderOptions`) whose fields are all filled in and typed. */
export interface PresetConfig {
  transport: PresetTransport;
  rate: RateWindow[];
  maxConnections: number;
  maxMessagesPerConnection?: number;
  maxRecipientsPerMessage?: number;
}

// Two defaults for what providers do not publish. A mailbox (Gmail, Outlook.com) submits like a
// person and its abuse detection watches bursts, so it gets one connection and one message every
// 3 seconds; a relay or sending service is built for applications, so 5 connections and 10/s.
const MAILBOX_PACE: RateWindow = { max: 20, per: '1m' };
const MAILBOX_CONNECTIONS = 1;
const SERVICE_PACE: RateWindow = { max: 10, per: '1s' };
const SERVICE_CONNECTIONS = 5;

// Ports by TLS mode, as each provider publishes them.
const IMPLICIT_TLS_PORTS = [465, 2465];

function fail(preset: string, message: string): never {
  throw new ConfigError([{ path: `presets.${preset}`, message }]);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

// Not a type guard: the options keep their declared type (a guard would widen them to a record).
function isOptions(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.trim().length > 0;
}

/** Checks credentials without ever echoing them, and copies them so that the caller's object is not shared. */
function checkAuth(preset: string, auth: unknown): PresetAuth {
  if (!isObject(auth)) fail(preset, 'auth is required: { user, pass } (or nodemailer OAuth2 options with type: "OAuth2")');
  if (!nonEmpty(auth.user)) fail(preset, 'auth.user is required: the account\'s SMTP user name');
  if (auth.type === 'OAuth2') return { ...(auth as PresetAuth) };
  if (!nonEmpty(auth.pass)) fail(preset, 'auth.pass is required: the account\'s SMTP password or key');
  return { user: auth.user, pass: auth.pass };
}

function checkSecret(preset: string, name: string, value: unknown): string {
  if (!nonEmpty(value)) fail(preset, `${name} is required`);
  return value;
}

function checkPositiveInt(preset: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) fail(preset, `${name}: expected a whole number greater than 0`);
  return value;
}

/** SMTP options for a host and port; the port decides implicit TLS (465, 2465) or required STARTTLS. */
function smtp(preset: string, host: string, port: number, allowed: readonly number[], auth?: PresetAuth): PresetTransport {
  if (!allowed.includes(port)) fail(preset, `port: expected one of ${allowed.join(', ')}, got ${JSON.stringify(port)}`);
  const transport: PresetTransport = IMPLICIT_TLS_PORTS.includes(port) ? { host, port, secure: true } : { host, port, secure: false, requireTLS: true };
  if (auth !== undefined) transport.auth = auth;
  return transport;
}

/** A daily allowance from the account's plan, when the user knows it. */
function withDailyQuota(preset: string, pace: RateWindow, dailyQuota: number | undefined): RateWindow[] {
  return dailyQuota === undefined ? [{ ...pace }] : [{ ...pace }, { max: checkPositiveInt(preset, 'dailyQuota', dailyQuota), per: '24h' }];
}

// ---------------------------------------------------------------------------------------------

export interface SesOptions {
  /** AWS Region of the SES identity and SMTP credentials, such as `'eu-west-1'`. */
  region: string;
  /** SES SMTP credentials (not the AWS access key): they are per Region. */
  auth: { user: string; pass: string };
  /**
   * The account is in the SES sandbox: 1 message per second and 200 per 24 hours unless given below.
   * @default false
   */
  sandbox?: boolean;
  /** The account's maximum send rate per second (SES console, or `GetSendQuota`'s `MaxSendRate`). Required out of the sandbox. */
  maxSendRate?: number;
  /** The account's 24-hour quota (`Max24HourSend`); `-1` (unlimited) adds no daily window. @default 200 in the sandbox, none otherwise */
  dailyQuota?: number;
  /** 587, 25 or 2587 use STARTTLS; 465 or 2465 use TLS from the start. @default 587 */
  port?: 587 | 25 | 2587 | 465 | 2465;
}

/**
 * Amazon SES SMTP interface: `email-smtp.<region>.amazonaws.com`, port 587 with STARTTLS required.
 *
 * - Sandbox: 1 message per second and 200 per 24 hours (SES "Service quotas" page).
 * - Out of the sandbox AWS publishes no default: the rate and quota "vary based on your specific use
 *   case", so `maxSendRate` is required (a `ConfigError` otherwise) and `dailyQuota` is recommended.
 * - 50 recipients per message (To, CC and BCC together; SES `SendEmail` reference). SES counts its
 *   quotas in recipients, and the rate windows here count messages: with several recipients per
 *   message, lower the windows accordingly.
 * - Connections: not published; 1 in the sandbox, 5 otherwise.
 *
 * @example presets.ses({ region: 'eu-west-1', auth: { user, pass }, maxSendRate: 14, dailyQuota: 50_000 })
 */
function ses(options: SesOptions): PresetConfig {
  if (!isOptions(options)) fail('ses', 'expected options: { region, auth, maxSendRate } or { region, auth, sandbox: true }');
  const { region, sandbox = false, maxSendRate, dailyQuota, port = 587 } = options;
  if (!nonEmpty(region) || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) fail('ses', `region: expected an AWS Region such as "eu-west-1", got ${JSON.stringify(region)}`);
  const auth = checkAuth('ses', options.auth);
  if (maxSendRate !== undefined && !(typeof maxSendRate === 'number' && Number.isFinite(maxSendRate) && maxSendRate > 0)) {
    fail('ses', 'maxSendRate: expected the account\'s maximum send rate, a number of messages per second greater than 0');
  }
  if (dailyQuota !== undefined && dailyQuota !== -1) checkPositiveInt('ses', 'dailyQuota', dailyQuota);
  if (!sandbox && maxSendRate === undefined) {
    fail('ses', 'maxSendRate is required for an account out of the sandbox: pass the account\'s maximum send rate (SES console, or GetSendQuota\'s MaxSendRate), or sandbox: true');
  }
  const rate = sandbox && maxSendRate === undefined ? 1 : maxSendRate!;
  const daily = dailyQuota ?? (sandbox ? 200 : -1);
  const windows: RateWindow[] = [perSecond(rate)];
  if (daily !== -1) windows.push({ max: daily, per: '24h' });
  return {
    transport: smtp('ses', `email-smtp.${region}.amazonaws.com`, port, [587, 25, 2587, 465, 2465], auth),
    rate: windows,
    maxConnections: sandbox ? 1 : SERVICE_CONNECTIONS,
    maxRecipientsPerMessage: 50,
  };
}

/** `n` per second as a window; a fractional rate (SES reports a double) becomes one send per interval, rounded down. */
function perSecond(rate: number): RateWindow {
  return Number.isInteger(rate) ? { max: rate, per: '1s' } : { max: 1, per: Math.ceil(1_000 / rate) };
}

// ---------------------------------------------------------------------------------------------

export interface Microsoft365Options {
  /** The mailbox's credentials, or OAuth2 options (`type: 'OAuth2'`, `user`, `accessToken`): Microsoft is retiring Basic auth for SMTP AUTH. */
  auth: PresetAuth;
  /** 587 is recommended; 25 also accepts SMTP AUTH client submission. @default 587 */
  port?: 587 | 25;
}

/**
 * Microsoft 365 / Exchange Online, SMTP AUTH client submission: `smtp.office365.com:587`, STARTTLS.
 *
 * Published limits (Exchange Online service description, "Sending limits"; Exchange Team blog on
 * SMTP Authenticated Submission):
 * - 30 messages per minute (message rate limit, SMTP client submission);
 * - 10,000 recipients per day (recipient rate limit, rolling 24 hours): the window counts messages,
 *   which is the same thing while each message has one recipient;
 * - 500 recipients per message;
 * - 3 concurrent connections per mailbox ("432 4.3.2 concurrent connection limit exceeded").
 */
function microsoft365(options: Microsoft365Options): PresetConfig {
  if (!isOptions(options)) fail('microsoft365', 'expected options: { auth }');
  return {
    transport: smtp('microsoft365', 'smtp.office365.com', options.port ?? 587, [587, 25], checkAuth('microsoft365', options.auth)),
    rate: [{ max: 30, per: '1m' }, { max: 10_000, per: '24h' }],
    maxConnections: 3,
    maxRecipientsPerMessage: 500,
  };
}

export interface OutlookOptions {
  /** The Outlook.com account, or OAuth2 options: Microsoft is deprecating Basic auth for Outlook.com. */
  auth: PresetAuth;
  /**
   * The account has a Microsoft 365 subscription, for which Microsoft publishes its limits.
   * @default false
   */
  subscriber?: boolean;
}

/**
 * Outlook.com (consumer: outlook.com, hotmail.com, live.com): `smtp-mail.outlook.com:587`, STARTTLS.
 *
 * Microsoft publishes limits for Microsoft 365 subscribers only ("Sending limits in Outlook.com"):
 * 5,000 recipients a day, 500 per message, 1,000 a day to people never written to before. With
 * `subscriber: true` this preset uses 1,000 a day (a newsletter mostly goes to such recipients) and
 * 500 per message. For other accounts Microsoft says only that limits "will be lower": this preset
 * uses 300 a day and 100 per message (figures reported by third parties, not by Microsoft).
 * Per-minute rate and connections: not published (20 per minute, 1 connection).
 */
function outlook(options: OutlookOptions): PresetConfig {
  if (!isOptions(options)) fail('outlook', 'expected options: { auth }');
  const subscriber = options.subscriber === true;
  return {
    transport: smtp('outlook', 'smtp-mail.outlook.com', 587, [587], checkAuth('outlook', options.auth)),
    rate: [{ ...MAILBOX_PACE }, { max: subscriber ? 1_000 : 300, per: '24h' }],
    maxConnections: MAILBOX_CONNECTIONS,
    maxRecipientsPerMessage: subscriber ? 500 : 100,
  };
}

// ---------------------------------------------------------------------------------------------

export interface GmailOptions {
  /** The Gmail address and an app password, or OAuth2 options: Google no longer accepts the account password. */
  auth: PresetAuth;
  /** 465: TLS from the start; 587: STARTTLS. @default 465 */
  port?: 465 | 587;
}

export interface GoogleWorkspaceOptions extends GmailOptions {
  /** The Workspace account is a trial (or trial-like after conversion): 500 messages a day instead of 2,000. @default false */
  trial?: boolean;
}

/**
 * Gmail (consumer account): `smtp.gmail.com:465`, TLS.
 *
 * - 500 messages a day: reported widely (and by Google for Workspace trial accounts), but no Google
 *   page for consumer accounts was found: treat it as a ceiling, not a promise.
 * - 100 recipients per message sent through SMTP (Google's Workspace limits page, and Gmail's own
 *   help for POP/SMTP users).
 * - Per-minute rate and connections: not published (20 per minute, 1 connection).
 */
function gmail(options: GmailOptions): PresetConfig {
  if (!isOptions(options)) fail('gmail', 'expected options: { auth }');
  return google('gmail', options, 500);
}

/**
 * Google Workspace user through `smtp.gmail.com:465`, TLS ("Gmail sending limits in Google Workspace"):
 * - 2,000 messages a day (500 for trial accounts), rolling 24 hours;
 * - 100 recipients per message sent through SMTP;
 * - also 10,000 recipients a day, 3,000 external and 3,000 unique (2,000 external): with one recipient
 *   per message the 2,000 messages bind first.
 * Per-minute rate and connections: not published (20 per minute, 1 connection).
 */
function googleWorkspace(options: GoogleWorkspaceOptions): PresetConfig {
  if (!isOptions(options)) fail('googleWorkspace', 'expected options: { auth }');
  return google('googleWorkspace', options, options.trial === true ? 500 : 2_000);
}

function google(preset: string, options: GmailOptions, perDay: number): PresetConfig {
  return {
    transport: smtp(preset, 'smtp.gmail.com', options.port ?? 465, [465, 587], checkAuth(preset, options.auth)),
    rate: [{ ...MAILBOX_PACE }, { max: perDay, per: '24h' }],
    maxConnections: MAILBOX_CONNECTIONS,
    maxRecipientsPerMessage: 100,
  };
}

export interface GoogleRelayOptions {
  /** A Workspace user's credentials, when the relay rule requires SMTP AUTH; omit for IP-address authentication. */
  auth?: PresetAuth;
  /** 587 (STARTTLS, Google's advice when TLS is on), 25, or 465 (TLS). @default 587 */
  port?: 587 | 25 | 465;
}

/**
 * Google Workspace SMTP relay service: `smtp-relay.gmail.com:587`, STARTTLS.
 *
 * - 10,000 recipients per user per 24 hours ("SMTP relay service" limits; the user is the envelope
 *   sender): one sending user per provider is assumed.
 * - 100 recipients per message (Workspace limits page: includes `smtp-relay.gmail.com`).
 * - Google also applies unpublished per-customer peak limits ("450 4.2.1 Peak SMTP relay limit
 *   exceeded"), so the pace is the service default: 10/s and 5 connections, not published.
 */
function googleRelay(options: GoogleRelayOptions = {}): PresetConfig {
  if (!isOptions(options)) fail('googleRelay', 'expected options: { auth? }');
  const auth = options.auth === undefined ? undefined : checkAuth('googleRelay', options.auth);
  return {
    transport: smtp('googleRelay', 'smtp-relay.gmail.com', options.port ?? 587, [587, 25, 465], auth),
    rate: [{ ...SERVICE_PACE }, { max: 10_000, per: '24h' }],
    maxConnections: SERVICE_CONNECTIONS,
    maxRecipientsPerMessage: 100,
  };
}

// ---------------------------------------------------------------------------------------------

/** Options shared by the sending services' presets. */
export interface ServiceOptions {
  /** Messages a day the account's plan allows; adds a 24-hour window. */
  dailyQuota?: number;
}

export interface SendgridOptions extends ServiceOptions {
  /** An API key with at least "Mail" permission. It becomes the SMTP password; the user name is `apikey`. */
  apiKey: string;
  /** 587, 25 or 2525 use STARTTLS; 465 uses TLS. @default 587 */
  port?: 587 | 25 | 2525 | 465;
}

/**
 * Twilio SendGrid: `smtp.sendgrid.net:587`, STARTTLS, user `apikey`, password the API key.
 *
 * Published ("Integrating with the SMTP API"): up to 5,000 messages per SMTP connection, up to 10,000
 * concurrent connections from one server; 1,000 recipients per request (Mail Send API; no separate
 * SMTP figure found). Sending rate: not published (10/s, 5 connections).
 */
function sendgrid(options: SendgridOptions): PresetConfig {
  if (!isOptions(options)) fail('sendgrid', 'expected options: { apiKey }');
  const auth = { user: 'apikey', pass: checkSecret('sendgrid', 'apiKey', options.apiKey) };
  return {
    transport: smtp('sendgrid', 'smtp.sendgrid.net', options.port ?? 587, [587, 25, 2525, 465], auth),
    rate: withDailyQuota('sendgrid', SERVICE_PACE, options.dailyQuota),
    maxConnections: SERVICE_CONNECTIONS,
    maxMessagesPerConnection: 5_000,
    maxRecipientsPerMessage: 1_000,
  };
}

export interface MailgunOptions extends ServiceOptions {
  /** The sending domain's SMTP credentials (per domain, such as `postmaster@mg.example.com`). */
  auth: { user: string; pass: string };
  /** Region of the domain: US and EU are separate infrastructure. @default 'us' */
  region?: 'us' | 'eu';
  /** 587, 25 or 2525 use STARTTLS; 465 uses TLS. @default 587 */
  port?: 587 | 25 | 2525 | 465;
}

/**
 * Mailgun: `smtp.mailgun.org` (US) or `smtp.eu.mailgun.org` (EU), port 587, STARTTLS.
 * 1,000 recipients per batch (Mailgun's batch-sending limit). Rate and connections: not published
 * (10/s, 5 connections).
 */
function mailgun(options: MailgunOptions): PresetConfig {
  if (!isOptions(options)) fail('mailgun', 'expected options: { auth, region? }');
  const region = options.region ?? 'us';
  if (region !== 'us' && region !== 'eu') fail('mailgun', `region: expected "us" or "eu", got ${JSON.stringify(region)}`);
  const host = region === 'eu' ? 'smtp.eu.mailgun.org' : 'smtp.mailgun.org';
  return {
    transport: smtp('mailgun', host, options.port ?? 587, [587, 25, 2525, 465], checkAuth('mailgun', options.auth)),
    rate: withDailyQuota('mailgun', SERVICE_PACE, options.dailyQuota),
    maxConnections: SERVICE_CONNECTIONS,
    maxRecipientsPerMessage: 1_000,
  };
}

export interface PostmarkOptions extends ServiceOptions {
  /** The Server API Token: Postmark takes it as both SMTP user name and password. */
  serverToken: string;
  /**
   * Send through the broadcast host (`smtp-broadcasts.postmarkapp.com`) for newsletters and other bulk mail.
   * Pick the stream itself with an `X-PM-Message-Stream` header on each message.
   * @default false
   */
  broadcast?: boolean;
  /** 587, 25 or 2525, all STARTTLS: Postmark has no implicit-TLS port. @default 587 */
  port?: 587 | 25 | 2525;
}

/**
 * Postmark: `smtp.postmarkapp.com:587` (transactional) or `smtp-broadcasts.postmarkapp.com:587`
 * (broadcast), STARTTLS, the Server API Token as user name and password. Without an
 * `X-PM-Message-Stream` header Postmark uses the server's default transactional stream.
 * 50 recipients per message, To, CC and BCC together (Postmark developer overview). Rate and
 * connections: not published (10/s, 5 connections).
 */
function postmark(options: PostmarkOptions): PresetConfig {
  if (!isOptions(options)) fail('postmark', 'expected options: { serverToken }');
  const token = checkSecret('postmark', 'serverToken', options.serverToken);
  const host = options.broadcast === true ? 'smtp-broadcasts.postmarkapp.com' : 'smtp.postmarkapp.com';
  return {
    transport: smtp('postmark', host, options.port ?? 587, [587, 25, 2525], { user: token, pass: token }),
    rate: withDailyQuota('postmark', SERVICE_PACE, options.dailyQuota),
    maxConnections: SERVICE_CONNECTIONS,
    maxRecipientsPerMessage: 50,
  };
}

export interface BrevoOptions extends ServiceOptions {
  /** The SMTP login and an SMTP key (not the account password, not an API key). */
  auth: { user: string; pass: string };
  /** 587 or 2525 (STARTTLS required by this preset), or 465 (TLS). @default 587 */
  port?: 587 | 2525 | 465;
}

/**
 * Brevo (formerly Sendinblue) SMTP relay: `smtp-relay.brevo.com:587`. Brevo documents 587 and 2525
 * as non-encrypted ports; this preset still requires STARTTLS so that the key never travels in clear.
 * Rate, connections and recipients per message: not published for SMTP (10/s, 5 connections).
 */
function brevo(options: BrevoOptions): PresetConfig {
  if (!isOptions(options)) fail('brevo', 'expected options: { auth }');
  return {
    transport: smtp('brevo', 'smtp-relay.brevo.com', options.port ?? 587, [587, 2525, 465], checkAuth('brevo', options.auth)),
    rate: withDailyQuota('brevo', SERVICE_PACE, options.dailyQuota),
    maxConnections: SERVICE_CONNECTIONS,
  };
}

/**
 * Provider configs with each provider's published limits; see docs/providers.md for every number's source.
 * Each returns plain data: spread it to override (`{ ...presets.gmail({ auth }), maxConnections: 2 }`).
 */
export const presets = {
  ses,
  microsoft365,
  outlook,
  gmail,
  googleWorkspace,
  googleRelay,
  sendgrid,
  mailgun,
  postmark,
  brevo,
} as const;
