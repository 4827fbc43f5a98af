import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifySmtpError, isTooManyRecipients, parseRetryAfter } from '../../src/smtp/classify.js';
import { DECISION_KINDS, type Decision, type DecisionKind, type SmtpErrorLike } from '../../src/smtp/decision.js';

interface FixtureReply {
  responseCode?: number;
  response?: string;
  code?: string;
  kind: DecisionKind;
  retryAfterMs?: number;
}

const fixture = JSON.parse(
  readFileSync(new URL('../../../shared/fixtures/smtp-replies.json', import.meta.url), 'utf8'),
) as { replies: FixtureReply[] };

function expected(kind: DecisionKind, retryAfterMs?: number): Decision {
  return retryAfterMs === undefined ? { kind } : { kind, retryAfterMs };
}

/** The fields nodemailer would set, without any that the fixture leaves out. */
function asError(entry: FixtureReply): SmtpErrorLike {
  return {
    ...(entry.responseCode !== undefined && { responseCode: entry.responseCode }),
    ...(entry.response !== undefined && { response: entry.response }),
    ...(entry.code !== undefined && { code: entry.code }),
  };
}

const label = (entry: FixtureReply): string => entry.response || entry.code || JSON.stringify(entry);

describe('classifySmtpError: every reply of the shared fixture', () => {
  it('has replies whose kinds are all decision kinds', () => {
    expect(fixture.replies.length).toBeGreaterThan(0);
    for (const entry of fixture.replies) expect(DECISION_KINDS).toContain(entry.kind);
  });

  it.each(fixture.replies.map((entry) => [label(entry), entry] as const))(
    'reads the error object for %s',
    (_name, entry) => {
      expect(classifySmtpError(asError(entry))).toStrictEqual(expected(entry.kind, entry.retryAfterMs));
    },
  );

  it.each(fixture.replies.filter((entry) => entry.response).map((entry) => [label(entry), entry] as const))(
    'reads the bare reply string %s',
    (_name, entry) => {
      expect(classifySmtpError(entry.response)).toStrictEqual(expected(entry.kind, entry.retryAfterMs));
    },
  );
});

interface Case {
  server: string;
  input: unknown;
  kind: DecisionKind;
  retryAfterMs?: number;
}

// Wordings that are not in the fixture: the rules must generalise to them.
const cases: Case[] = [
  // connection-limited
  {
    server: 'Comcast, 421 at the greeting',
    input: { code: 'ECONNECTION', responseCode: 421, response: '421 resimta-h1p.sys.comcast.net 198.51.100.7 Too many connections from your IP', command: 'CONN' },
    kind: 'connection-limited',
  },
  { server: 'Comcast', input: '421 - Too many sessions opened', kind: 'connection-limited' },
  { server: 'Postfix anvil, TLS', input: '421 4.7.0 mx.example.org Error: too many new TLS sessions from 198.51.100.7', kind: 'connection-limited' },
  {
    server: 'Microsoft 365',
    input: '421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, closing transmission channel',
    kind: 'connection-limited',
  },
  { server: 'no reply code at all', input: 'Too many connections', kind: 'connection-limited' },
  { server: 'Microsoft 365, per-mailbox concurrency', input: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', kind: 'connection-limited' },
  { server: 'a multi-line reply split mid-phrase', input: '421-4.7.0 [203.0.113.5] Our system has detected too many\n421 4.7.0 connections from your IP', kind: 'connection-limited' },
  { server: 'extra spaces', input: '421  4.7.0   Too   many   connections', kind: 'connection-limited' },
  // rate-limited
  { server: 'generic deferral', input: '421 4.7.0 Temporarily deferred, try again in 10 minutes', kind: 'rate-limited', retryAfterMs: 600_000 },
  // A 421 that names when to come back is the same deferral as "try again later": the lane pauses that long.
  { server: 'a bare 421 with a delay', input: '421 4.7.0 Try again in 5 minutes', kind: 'rate-limited', retryAfterMs: 300_000 },
  {
    server: 'Microsoft, 4.7.500–699 in other words',
    input: '451 4.7.500 Access denied, please try again later. For more information please go to https://go.microsoft.com/fwlink/?LinkId=526653. (AS843)',
    kind: 'rate-limited',
  },
  {
    server: 'Yahoo, complaints',
    input: '421 4.7.0 [TS01] Messages from 198.51.100.7 temporarily deferred due to user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes',
    kind: 'rate-limited',
  },
  {
    server: 'Gmail, 421 at the greeting read by its text',
    input: { code: 'ECONNECTION', responseCode: 421, response: '421 4.7.0 Try again later, closing connection. (HELO) a1si1234 - gsmtp', command: 'CONN' },
    kind: 'rate-limited',
  },
  { server: 'Exim ratelimit', input: '451 4.7.1 Sender rate overlimit - 180.3 / 1h / per_rcpt', kind: 'rate-limited' },
  { server: 'Postfix recipient rate', input: '450 4.7.1 Error: too many recipients from 198.51.100.7', kind: 'rate-limited' },
  { server: 'Mail.ru', input: '421 4.7.0 Ratelimit exceeded for your IP. Try again later.', kind: 'rate-limited' },
  { server: 'SendGrid', input: '421 4.7.0 Too many messages sent too quickly, slow down', kind: 'rate-limited' },
  { server: 'Mailgun', input: '421 Domain example.com has exceeded the sending rate limit, try again in 60 seconds', kind: 'rate-limited', retryAfterMs: 60_000 },
  { server: 'status code alone: X.4.5', input: '451 4.4.5 Mail system congestion, please retry later', kind: 'rate-limited' },
  { server: 'status code alone: X.7.28', input: '452 4.7.28 Sending IP temporarily limited', kind: 'rate-limited' },
  { server: 'words and a delay', input: '450 4.7.0 Too many messages, please wait 30s', kind: 'rate-limited', retryAfterMs: 30_000 },
  {
    server: 'Microsoft, 4.7.850–899 like 4.7.500–699',
    input: '451 4.7.851 Access denied, please try again later. For more information please go to https://go.microsoft.com/fwlink/?LinkId=526653. (AS7xxxx)',
    kind: 'rate-limited',
  },
  { server: 'Exim ratelimit, spec wording', input: '451 Sender rate exceeds 1500 messages per 1h', kind: 'rate-limited' },
  { server: 'Exim global ratelimit', input: '451 Sorry, too busy. Try again later.', kind: 'rate-limited' },
  // The relay limit is the customer's: the lane slows down; the trailing "temporary error" adds nothing.
  {
    server: 'Google Workspace SMTP relay, peak limit',
    input: '450-4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error. For more information on SMTP relay limits, please contact your administrator or visit https://support.google.com/a/answer/6140680',
    kind: 'rate-limited',
  },
  { server: 'a status code is not outweighed by "temporary error"', input: '421 4.7.28 Sending IP limited. This is a temporary error.', kind: 'rate-limited' },
  // Limits per hour and per day, none said to be reached: a receiver's pace for this lane, not the provider's quota.
  {
    server: 'Outlook.com RP-001',
    input: "421 RP-001 (COL004-MC3F15) Unfortunately, some messages from 203.0.113.5 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day.",
    kind: 'rate-limited',
  },
  { server: 'an hourly limit on an X.5.3 status is not the envelope', input: '452 4.5.3 Hourly message limit exceeded', kind: 'rate-limited' },
  // greylisted
  { server: 'Rspamd', input: '451 4.7.1 Please try again later (greylisted)', kind: 'greylisted' },
  { server: 'sqlgrey', input: '450 4.7.1 Graylisting in effect, please retry after 2 minutes', kind: 'greylisted', retryAfterMs: 120_000 },
  { server: 'Exim', input: '451 Grey-listed, please try again later', kind: 'greylisted' },
  { server: 'Mimecast', input: '451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451', kind: 'greylisted' },
  { server: 'Mimecast, as seen', input: '451 Internal resource is temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451 [Aj3QXapeMpqZYaeFwWhjzw.us32]', kind: 'greylisted' },
  { server: 'Mimecast, current docs', input: '451 Internal resources are temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451', kind: 'greylisted' },
  { server: 'a delay split over two lines', input: '451-4.7.1 Greylisted, please try again in 5\n451 4.7.1 minutes', kind: 'greylisted', retryAfterMs: 300_000 },
  // A line that starts with a number is not a continuation prefix unless a space or dash follows its three digits.
  { server: 'a wrapped delay', input: '451-4.7.1 Greylisted, try again in\n2500 seconds', kind: 'greylisted', retryAfterMs: 2_500_000 },
  // recipient-throttled
  {
    server: 'Gmail',
    input: '450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time.',
    kind: 'recipient-throttled',
  },
  { server: 'status code alone: 4.2.1', input: '450 4.2.1 Mailbox temporarily disabled', kind: 'recipient-throttled' },
  { server: 'plain words', input: '451 This user is receiving too much mail right now', kind: 'recipient-throttled' },
  // quota-exceeded
  { server: 'generic', input: '550 5.7.1 Daily sending limit exceeded', kind: 'quota-exceeded' },
  {
    server: 'Exchange Online',
    input: '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception',
    kind: 'quota-exceeded',
  },
  {
    server: 'Outlook.com',
    input: "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients",
    kind: 'quota-exceeded',
  },
  { server: 'SendGrid credits', input: '451 Authentication failed: Maximum credits exceeded', kind: 'quota-exceeded' },
  { server: 'Zoho', input: '550 5.4.6 Sending limit exceeded for the day. Try again in 24 hours', kind: 'quota-exceeded', retryAfterMs: 86_400_000 },
  // A day's limit wins over X.5.3 (which would split the envelope) and over being called a rate.
  { server: 'Emailit, daily limit on X.5.3', input: '452 4.5.3 Daily message limit exceeded', kind: 'quota-exceeded' },
  { server: 'Iridis mailRelay, a daily "rate"', input: '451 HST-RTE Daily send rate exceeded, retry later', kind: 'quota-exceeded' },
  { server: 'a limit per 24 hours', input: '451 Maximum of 2000 messages per 24 hours reached', kind: 'quota-exceeded' },
  { server: 'too many in the last 24 hours', input: '421 You have sent too many messages in the last 24 hours', kind: 'quota-exceeded' },
  // auth
  {
    server: 'Gmail, nodemailer EAUTH',
    input: {
      code: 'EAUTH',
      responseCode: 535,
      response: '535-5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials',
      command: 'AUTH PLAIN',
    },
    kind: 'auth',
  },
  { server: 'Microsoft 365', input: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.', kind: 'auth' },
  { server: 'Gmail', input: '534-5.7.9 Application-specific password required.', kind: 'auth' },
  { server: 'Outlook', input: '530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com]', kind: 'auth' },
  { server: 'unknown text at AUTH LOGIN', input: { code: 'EAUTH', responseCode: 550, response: '550 Denied', command: 'AUTH LOGIN' }, kind: 'auth' },
  { server: 'nodemailer, no credentials', input: { code: 'EAUTH', message: 'Missing credentials for "PLAIN"', command: 'API' }, kind: 'auth' },
  // The sending account can send no more: stop the provider, the recipients are not at fault.
  { server: 'Amazon SES, sending paused', input: '554 Message rejected: Sending paused for this account. For more information, please check the inbox of the email address associated with your AWS account.', kind: 'auth' },
  {
    server: 'Amazon SES, IAM permission',
    input: "554 Access denied: User `arn:aws:iam::123456789012:user/ses-smtp-user' is not authorized to perform `ses:SendRawEmail' on resource `arn:aws:ses:eu-west-1:123456789012:identity/example.com'",
    kind: 'auth',
  },
  { server: 'Microsoft 365, account banned', input: '550 5.7.501 Access denied, spam abuse detected. The sending account has been banned due to detected spam activity. For details, see https://aka.ms/EXOSmtpErrors', kind: 'auth' },
  { server: 'account suspended for volume: not a pace either', input: '550 5.7.1 Your account has been suspended for sending too many messages', kind: 'auth' },
  { server: 'Google Workspace relay, credentials', input: "550-5.7.1 Invalid credentials for relay [203.0.113.5]. The IP address you've registered in your Workspace SMTP Relay service doesn't match the domain of the account this email is being sent from.", kind: 'auth' },
  // The recipient's account: that message only.
  { server: 'Gmail, recipient disabled', input: '550-5.2.1 The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser', kind: 'permanent' },
  { server: 'Yahoo, recipient disabled', input: '554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This account has been disabled or discontinued [#102].', kind: 'permanent' },
  // A stream attachment the first attempt read: every retry would fail the same way.
  { server: 'nodemailer, stream content read already', input: { code: 'ESTREAM', message: 'Content stream was already read or destroyed' }, kind: 'permanent' },
  { server: 'nodemailer, stream that failed', input: { code: 'ESTREAM', message: 'Premature close' }, kind: 'transient' },
  { server: 'nodemailer message only', input: new Error('Invalid login: 535 Authentication failed'), kind: 'auth' },
  // RFC 4954: only a new password helps, though the code is a 4xx.
  { server: 'RFC 4954, Exchange', input: { code: 'EAUTH', responseCode: 432, response: '432 4.7.12 A password transition is needed', command: 'AUTH LOGIN' }, kind: 'auth' },
  // transient
  { server: 'Dovecot submission', input: { code: 'EAUTH', responseCode: 454, response: '454 4.7.0 Temporary authentication failure', command: 'AUTH LOGIN' }, kind: 'transient' },
  { server: 'Exchange', input: '451 4.7.0 Temporary server error. Please try again later. PRX4', kind: 'transient' },
  { server: 'Exim', input: '451 Temporary local problem - please try later', kind: 'transient' },
  { server: 'Exim timeout', input: '421 mail.example.org: SMTP command timeout - closing connection', kind: 'transient' },
  { server: 'GMX', input: '421 gmx.net (mxgmx004) Nemesis ESMTP Service not available', kind: 'transient' },
  { server: 'greeting 421, system trouble', input: { code: 'ECONNECTION', responseCode: 421, response: '421 4.3.2 Service not available, closing transmission channel', command: 'CONN' }, kind: 'transient' },
  { server: 'Postfix', input: '450 4.7.1 Client host rejected: cannot find your hostname, [198.51.100.7]', kind: 'transient' },
  { server: 'Gmail, full mailbox is not our quota', input: '452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp', kind: 'transient' },
  { server: 'Exchange, split the envelope', input: '452 4.5.3 Too many recipients', kind: 'transient' },
  { server: 'RFC 821 legacy', input: '552 Too many recipients', kind: 'transient' },
  // The quota of this one message (same Message-ID resent), not the account's: the provider must not pause.
  {
    server: 'Gmail, duplicate Message-ID',
    input: '421-4.7.28 Our system has detected that this message exceeded its quota for sending messages with the same Message-ID:<a1b2@example.com>. To best protect our users, the message has been temporarily rejected. For more information, go to https://support.google.com/mail/answer/188131',
    kind: 'transient',
  },
  { server: 'a 4xx code of its own: not a pace', input: '460 too many messages (#4.3.0)', kind: 'transient' },
  { server: 'Sendmail, their disk on X.4.5', input: '452 4.4.5 Insufficient disk space; try again later', kind: 'transient' },
  { server: 'a size is not a reply code', input: new Error('Message exceeds size: 550 kB allowed'), kind: 'transient' },
  { server: 'Postfix, bad sequence', input: '503 5.5.1 Error: need RCPT command', kind: 'transient' },
  { server: 'refused connection', input: { code: 'ESOCKET', message: 'connect ECONNREFUSED 127.0.0.1:2525', command: 'CONN' }, kind: 'transient' },
  { server: 'DNS', input: { code: 'EDNS', message: 'getaddrinfo ENOTFOUND smtp.example.invalid', command: 'CONN' }, kind: 'transient' },
  { server: 'dropped', input: { code: 'ECONNECTION', message: 'Connection closed unexpectedly', command: 'CONN' }, kind: 'transient' },
  { server: 'protocol', input: { code: 'EPROTOCOL', message: 'Invalid greeting. response=hello: hello' }, kind: 'transient' },
  // permanent
  { server: 'Postfix', input: '554 5.7.1 <bob@example.org>: Relay access denied', kind: 'permanent' },
  {
    server: 'Gmail block that mentions a rate',
    input: '550-5.7.1 [198.51.100.7] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.',
    kind: 'permanent',
  },
  { server: 'Yahoo, 5.7.9 as policy', input: '554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes', kind: 'permanent' },
  { server: 'Gmail DMARC is not our credentials', input: "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy", kind: 'permanent' },
  { server: 'Postfix STARTTLS', input: '530 5.7.0 Must issue a STARTTLS command first', kind: 'permanent' },
  { server: 'Exchange', input: '552 5.2.2 Mailbox full', kind: 'permanent' },
  {
    server: 'Yahoo, a 4xx that says not to retry',
    input: '421 4.7.1 [TS03] All messages from 203.0.113.5 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes',
    kind: 'permanent',
  },
  // A 5xx with a pace's words is still a refusal (RFC 5321 4.2.1): not retried, the lane not slowed.
  { server: 'Postfix-style words on a 5xx', input: '550 5.7.1 Too much mail from 203.0.113.5 - rejected', kind: 'permanent' },
  { server: 'volume block', input: '554 5.7.1 Rejected: high volume of unsolicited messages from your network', kind: 'permanent' },
  { server: 'greylist words on a 5xx', input: '550 4.7.1 Greylisted', kind: 'permanent' },
  { server: 'connection words on a 5xx', input: '554 5.7.1 Too many connections from your host, rejected', kind: 'permanent' },
  { server: 'Gmail 5.7.28 as a block', input: '550-5.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.', kind: 'permanent' },
  { server: 'SES', input: '554 Message rejected: Email address is not verified.', kind: 'permanent' },
  { server: 'nodemailer error', input: new Error('Message failed: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown'), kind: 'permanent' },
  // A reply code quoted mid-text without an enhanced status: after "smtp;" or ": ", before a word.
  { server: 'qmail bounce diagnostic', input: 'smtp; 550 sorry, no mailbox here by that name. (#5.1.1)', kind: 'permanent' },
  { server: 'nodemailer error, no status', input: new Error('Message failed: 550 No such user here'), kind: 'permanent' },
  { server: 'duplicate Message-ID on a 5xx', input: '550 5.7.28 This message exceeded its quota for sending messages with the same Message-ID', kind: 'permanent' },
  { server: 'nodemailer, no recipients', input: { code: 'EENVELOPE', message: 'No recipients defined', command: 'API' }, kind: 'permanent' },
  { server: 'nodemailer, bad message', input: { code: 'EMESSAGE', message: 'Message failed' }, kind: 'permanent' },
  // garbage
  { server: 'undefined', input: undefined, kind: 'transient' },
  { server: 'null', input: null, kind: 'transient' },
  { server: 'a number', input: 42, kind: 'transient' },
  { server: 'an empty object', input: {}, kind: 'transient' },
  { server: 'an empty string', input: '', kind: 'transient' },
  { server: 'an array', input: ['421'], kind: 'transient' },
];

describe('classifySmtpError: wordings beyond the fixture', () => {
  it('covers every kind', () => {
    expect(new Set(cases.map((c) => c.kind))).toStrictEqual(new Set(DECISION_KINDS));
  });

  it.each(cases.map((c) => [c.kind, c.server, c] as const))('%s: %s', (_kind, _server, c) => {
    expect(classifySmtpError(c.input)).toStrictEqual(expected(c.kind, c.retryAfterMs));
  });

  it('never throws, even on an object whose fields throw', () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('boom'); } });
    expect(classifySmtpError(hostile)).toStrictEqual({ kind: 'transient' });
    expect(isTooManyRecipients(hostile)).toBe(false);
  });

  it('lets a responseCode field win over the code in the text', () => {
    expect(classifySmtpError({ responseCode: 535, response: '421 4.7.0 Too many connections' })).toStrictEqual({ kind: 'auth' });
  });

  it('names no delay for a permanent or auth decision', () => {
    expect(classifySmtpError('550 5.1.1 User unknown, try again in 5 minutes')).toStrictEqual({ kind: 'permanent' });
  });
});

describe('isTooManyRecipients', () => {
  it.each([
    '452 4.5.3 Too many recipients',
    '452 Too many recipients received this session',
    '552 Too many recipients',
    '4.5.3 Error: too many recipients',
    '452-4.5.3 Domain policy size per transaction exceeded, please try this recipient in a separate transaction.',
  ])('is true for %s', (reply) => {
    expect(isTooManyRecipients(reply)).toBe(true);
  });

  it('is true for the envelope nodemailer itself refuses', () => {
    expect(isTooManyRecipients({ code: 'EMAXRECIPIENTS', message: 'Recipient count exceeds maxRecipients' })).toBe(true);
  });

  it.each([
    '450 4.7.1 Error: too many recipients from 198.51.100.7',
    '421 4.7.0 Too many connections',
    '452 4.3.1 Insufficient system storage',
    // X.5.3 whose words name another limit: a quota or a rate, not the envelope.
    '452 4.5.3 Daily message limit exceeded',
    '452 4.5.3 Hourly message limit exceeded',
    '',
  ])('is false for %s', (reply) => {
    expect(isTooManyRecipients(reply)).toBe(false);
  });

  it.each([undefined, null, 42, {}])('is false for %s', (input) => {
    expect(isTooManyRecipients(input)).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it.each([
    ['try again in 5 minutes', 300_000],
    ['451 4.3.0 Temporary lookup failure, try again in 60 seconds', 60_000],
    ['retry in 10 mins', 600_000],
    ['please come back in 00:05:00', 300_000],
    ['please wait 30s', 30_000],
    ['retry after 2 hours', 7_200_000],
    ['in 1 hour', 3_600_000],
    ['Try Again In 5 Minutes', 300_000],
    ['try again in an hour', 3_600_000],
    ['sending blocked for 15 minutes', 900_000],
    ['please retry in 1.5 hours', 5_400_000],
    ['wait at least 90 sec', 90_000],
    ['try again in 24h', 86_400_000],
    ['retry in 500ms', 500],
    ['deferred for 1 day', 86_400_000],
    ['come back in 01:00:00', 3_600_000],
    ['421 Too busy. Retry-After: 120', 120_000],
    // Compound delays: the smaller units that follow add up.
    ['421 4.7.0 Try again in 2h30m', 9_000_000],
    ['451 Please retry in 1 hour 30 minutes', 5_400_000],
    ['deferred, wait 1 hour and 15 minutes', 4_500_000],
    ['try again in 5 minutes 30 seconds.', 330_000],
    ['retry in 1d 2h', 93_600_000],
    ['try again in 1m30s', 90_000],
    // What follows is not part of it: a larger unit, or no unit.
    ['try again in 30 minutes 2 hours', 1_800_000],
    ['try again in 5 minutes 421 4.7.0 mx.example.net', 300_000],
    ['try again in 10 minutes, 3 messages queued', 600_000],
  ])('reads %s', (text, ms) => {
    expect(parseRetryAfter(text)).toBe(ms);
  });

  it.each([
    'Server busy. Please try again later from [203.0.113.5]. (S77714)',
    'temporarily deferred due to unexpected volume - 4.16.55.1; see https://postmaster.yahooinc.com',
    '421 Temporary System Problem. Try again later (10)',
    'too many connections from 203.0.113.5',
    'limit of 100 messages in 1 hour exceeded',
    'limit exceeded for the day',
    'try again later',
    'retry in 5',
    'retry in 10 messages',
    'try again in 0 seconds',
    'come back in 12:75:00',
    'max 10 connections per ip in 60 seconds',
    'Too many messages (100) in 1 hour',
    'Session timed out after 300 seconds',
    'Retry-After: 0',
    '',
  ])('finds no delay in %s', (text) => {
    expect(parseRetryAfter(text)).toBeUndefined();
  });
});
