import type { Decision, DecisionKind, SmtpErrorLike } from './decision.js';

/** One case-insensitive pattern from alternatives, so that each group reads as a list of phrasings. */
const anyOf = (...phrasings: string[]): RegExp => new RegExp(phrasings.join('|'), 'i');

// Word patterns, grouped by meaning rather than by server, so that a new server's wording
// falls into the group of what it means. byWords reads them in this order.

/** Greylisting names itself, in every spelling ("greylisted", "graylisting", "grey-list"). */
const GREYLIST = anyOf(
  'gr[ae]y[ -]?list',
  'internal resources? (?:is |are )?temporarily unavailable', // Mimecast's greylisting 451, in each of its documented wordings
);
/** A temporary code whose words say that trying again is pointless (Yahoo's "[TS03] … permanently deferred; Retrying will NOT succeed"). */
const NO_RETRY = anyOf(
  'will not succeed', 'permanently deferred', 'do not (?:retry|resend)',
  // nodemailer's ESTREAM for a content stream the first attempt read: no retry can read it again.
  'stream was already read',
);
/** One recipient receives too fast: retry that message later; the lane's pace is not the cause. */
const RECIPIENT_THROTTLE = anyOf(
  'receiving (?:mail|messages?|e-?mails?) (?:too (?:quickly|fast)|at a rate)',
  '\\b(?:user|recipient|mailbox)\\b[^.]{0,40}(?:receiving too much|too quickly|too fast)',
  'recipient rate',
  'too many (?:messages|mails?|e-?mails?) (?:for|to) (?:this|the) (?:user|recipient|mailbox)',
);
/** The recipient's mailbox is full. Said with "quota" too, so it is read before QUOTA. */
const MAILBOX_FULL = anyOf(
  'mailbox\\b[^.]{0,30}\\b(?:full|quota|size)', 'inbox is full', 'over ?quota',
  'exceeded (?:its |the )?storage', 'storage allocation', 'disk quota', "recipient['’]s\\b[^.]{0,20}\\b(?:quota|storage)",
);
/**
 * A quota of this one message (Gmail's "421-4.7.28 … this message exceeded its quota for sending messages
 * with the same Message-ID"), not of the account: resending the same message is what trips it, so it
 * says nothing about the provider. Read before QUOTA.
 */
const MESSAGE_QUOTA = anyOf(
  '\\b(?:same|duplicate) message-?id', '\\bthis (?:message|e-?mail)\\b[^.]{0,20}\\b(?:exceeded|reached|over)\\b[^.]{0,10}\\bquota',
);
/** A window of a day, as limits name it: "per day", "for the day", "per 24 hours", "in the last 24 hours". Not "in 24 hours" (a delay). */
const DAY_WINDOW = '(?:(?:per|a|each|every|for the) day|(?:per|within|every|each|in the (?:last|past)|in any) 24 ?h(?:ours?|rs?)?)\\b';
/** Our account's sending quota for a window is spent. Wins over generic throttling words. */
const QUOTA = anyOf(
  'quota ?exceeded', 'exceeded\\b[^.]{0,20}\\bquota', '\\b(?:sending|send|message|daily|hourly|submission)\\b[^.]{0,20}\\bquota',
  // A day's limit is a quota even when it is called a rate ("Daily send rate exceeded"); an hour's or a
  // minute's is a pace (RATE), unless it says "quota".
  '\\bdaily\\b[^.]{0,40}\\b(?:limit|rate|allowance)', 'limit\\b[^.]{0,20}\\b(?:for|of) the day',
  '\\b(?:exceed|reach|too many)\\w*\\b[^.]{0,40}\\b' + DAY_WINDOW, DAY_WINDOW + '[^.]{0,20}\\b(?:exceeded|reached)',
  'credits? (?:exceeded|exhausted)', 'out of credits', // SendGrid-style plans
);
/** On a 5xx, reputation or policy words make it a block, even when the text also mentions a rate. */
const BLOCKED = anyOf('black ?list', 'block ?list', 'blocked using', '\\blisted (?:at|in|on|by)\\b', 'spam', 'reputation', 'dnsbl', '\\bpolicy\\b');
/**
 * On a 5xx, our account can no longer send at all (SES's "Sending paused for this account",
 * Microsoft's "The sending account has been banned", an IAM user "not authorized to perform
 * ses:SendRawEmail", Workspace's "Invalid credentials for relay"): like refused credentials, every
 * message would fail the same way, and the recipients are not at fault. Said of the sender's account
 * only: "The email account that you tried to reach is disabled" and Yahoo's "This account has been
 * disabled or discontinued" are the recipient's.
 */
const ACCOUNT_STOPPED = anyOf(
  "\\b(?:sending|your|sender(?:['’]s)?) account\\b[^.]{0,30}\\b(?:banned|suspended|disabled|paused|deactivated)",
  '\\b(?:sending|submission) (?:is |has been )?(?:paused|suspended|disabled) for (?:this|your) account',
  'not authorized to perform', 'invalid credentials',
);
/** Too many simultaneous connections or sessions: open fewer. */
const CONNECTIONS = anyOf(
  'too many\\b[^.]{0,30}\\b(?:connections|sessions)', 'concurrent\\b[^.]{0,30}\\bconnections',
  'connection (?:limit|rate|count)', '\\b(?:max(?:imum)?|number of)\\b[^.]{0,20}\\bconnections', 'connections? per (?:ip|host|client)',
  'sender thread limit', // Microsoft 365's concurrent connections per mailbox (432 4.3.2 STOREDRV.ClientSubmit)
);
/** Too many messages per unit of time: send slower. */
const RATE = anyOf(
  'rate[ -]?(?:limit|overlimit)', 'rate (?:was |has been |is )?exceed', '\\b(?:sending|send|submission|message|mail) rate', 'unusual rate',
  '\\b(?:peak|relay) (?:\\w+ )?limit (?:was |has been )?(?:exceeded|reached)', // Google Workspace's "Peak SMTP relay limit exceeded"
  '\\bhourly\\b[^.]{0,40}\\blimit', 'limits?\\b[^.]{0,40}\\bper (?:second|minute|hour)\\b', '\\bper (?:second|minute|hour)\\b[^.]{0,20}\\blimit',
  'too (?:much|many) (?:mail|messages|e-?mails|recipients)\\b', 'throttl', '(?:unexpected|high|unusual) volume',
  'slow down', 'sending too (?:fast|quickly)', '\\b(?:server|system|service) (?:is )?(?:too )?busy', '\\btoo busy',
);
/** The server itself has trouble (read on 4xx only): retry with backoff; our pace is not the cause. */
const SYSTEM_TROUBLE = anyOf(
  '\\b(?:service|system) (?:not available|unavailable)', 'local (?:problem|error)', 'lookup fail',
  'insufficient (?:system |disk )?(?:storage|space|resources)', '(?:queue|file) write error', 'internal (?:server )?error',
);
/**
 * Words that only say the failure is temporary ("This is a temporary error", "Temporary failure"). They
 * add nothing to a more specific cue, so they are read after the status defaults (step 5).
 */
const TEMPORARY = /temporar(?:y|ily)\b[^.]{0,20}\b(?:problem|failure|error|unavailable)/i;
/** Our credentials were refused. Trusted only with a 53x reply or no reply at all (see byWords). */
const AUTH_WORDS = anyOf(
  'authenticat\\w* (?:failed|failure|unsuccessful|required|credentials invalid)', 'invalid (?:login|credentials|user ?name|password)',
  'user ?name and password not accepted', '(?:bad|incorrect) (?:credentials|user ?name|password)', 'not authenticated',
  'application-specific password', 'log ?in via your web browser', 'login (?:denied|failed|incorrect)', 'password transition',
);
/** "try again later" on a 421 with no other cue: how the big receivers say "slow down" (Gmail, Yahoo). */
const DEFERRAL = anyOf('try (?:again )?later', 'deferr', 'come back later', '(?:try again|retry|come back) in \\d'); // "421 … Try again in 5 minutes" too
/** The envelope has more recipients than the server takes in one transaction. */
const TOO_MANY_RECIPIENTS = /too many recipients/i;
const AUTH_COMMAND = /^AUTH\b/i;

// nodemailer codes (and Node system codes), read after the reply, which says more when there is one.
const AUTH_CODES = new Set(['EAUTH', 'ENOAUTH', 'EOAUTH2']);
/** The message or the configuration is wrong; sending it again fails the same way. */
const PERMANENT_CODES = new Set(['EENVELOPE', 'EMESSAGE', 'ECONFIG', 'EREQUIRETLS', 'EFILEACCESS', 'EURLACCESS', 'EOTP', 'ERR_ACCESS_DENIED']);
/** The network or the session failed, not the message: try again. */
const TRANSIENT_CODES = new Set([
  'ECONNECTION', 'ECONNRESET', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNABORTED', 'ESOCKET', 'EDNS', 'ETLS', 'EPROTOCOL',
  'ESTREAM', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPROXY', 'EFETCH', 'EMAXLIMIT', 'EABORT',
]);

/**
 * A reply code at the start of a reply, one just before an enhanced status code ("Invalid login: 535-5.7.8 ..."),
 * or one after "smtp;" or ": " and before a word, as bounces and nodemailer's messages quote it ("smtp; 550 sorry,
 * no mailbox here", "Message failed: 550 No such user here"): but not a count or a size ("Size: 500 bytes").
 * The first of them is the reply's.
 */
const REPLY_CODE = new RegExp(
  '^\\s*([2-5]\\d\\d)(?=[ -]|$)|\\b([2-5]\\d\\d)[ -][245]\\.\\d{1,3}\\.\\d{1,3}' +
    '|(?:\\bsmtp;\\s*|:\\s)([2-5]\\d\\d) (?!(?:bytes|[kmg]i?b|kilobytes|megabytes|messages|e?-?mails|recipients|users|connections|sessions' +
    '|seconds|secs|minutes|mins|hours|hrs|days|ms|times|attempts|requests|errors|of|per|out|or|and|to|in|at)\\b)[a-z]',
  'i',
);
/**
 * 4xx reply codes that a standard defines (RFC 5321, RFC 4954's 432 and 454, RFC 1985's 458 and 459). Another
 * one ("460 too many messages") is a server's own; its pace words are not trusted to mean a pace.
 */
const STANDARD_4XX = new Set([421, 432, 450, 451, 452, 454, 455, 458, 459]);
/** RFC 3463 class.subject.detail, only where it belongs: first in the reply or right after the reply code. */
const ENHANCED_STATUS = /(?:^\s*|\b[2-5]\d\d[ -]\s*)([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)/;

/** The units a delay may name; `unitMs` tells what each is worth. */
const UNITS = 'milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d';
/** A delay introduced by a phrase ("try again in", "retry after", "wait", "for"), with a unit or as hh:mm:ss. */
const DELAY = new RegExp(
  // A window or a past duration, not a delay: "100 messages in 1 hour", "10 connections per ip in
  // 60 seconds", "Too many messages (100) in 1 hour", "Session timed out after 300 seconds".
  '(?<!(?:messages?|e?-?mails?|recipients?|connections?|sessions?|attempts?|requests?|per\\s+[a-z]+|\\)|timed out|idle)\\s+)' +
    '\\b(?:in|after|wait|for)\\s+(?:(?:at least|about|approximately|around|another|up to)\\s+)?' + // the phrase
    '(?:(\\d{1,3}):([0-5]\\d):([0-5]\\d)\\b' + // hh:mm:ss
    '|(?:(\\d+(?:\\.\\d+)?)\\s*|(?:an?|one)\\s+)(' + UNITS + ')(?![a-z]))', // amount and unit ("2h" of "2h30m" too)
  'i',
);
/** A further part of a compound delay, right after the first: "2h30m", "1 hour 30 minutes", "1 hour and 30 minutes". */
const DELAY_PART = new RegExp('^\\s*,?\\s*(?:and\\s+)?(\\d+(?:\\.\\d+)?)\\s*(' + UNITS + ')(?![a-z])', 'i');
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** HTTP's header, as some gateways quote it: "Retry-After: 120" (seconds). */
const RETRY_AFTER_HEADER = /\bretry-after:\s*(\d{1,7})\b/i;

interface Reply {
  replyCode?: number;
  status?: { subject: number; detail: number };
  text: string;
  code?: string;
  command?: string;
}

type Step = (r: Reply) => DecisionKind | undefined;
/** The evidence, in the order that decides when it disagrees (each step is below). */
const STEPS: Step[] = [byReplyCode, byStatus, byWords, byStatusDefault, byTemporaryWords, byCode, byCommand, byReplyClass];

/**
 * What an SMTP reply or a nodemailer error means for the sender. Pure; never throws.
 *
 * Evidence is read in a fixed order, and the first step that can tell decides: the reply code,
 * the enhanced status code, the words, then nodemailer's `code`, then the `command`.
 * A 421 at the greeting (nodemailer `code: 'ECONNECTION'`, `responseCode: 421`) is read by its
 * 421 and its text, not as a dropped connection.
 *
 * @example classifySmtpError('421 4.7.0 Too many connections') // { kind: 'connection-limited' }
 * @example classifySmtpError('451 4.7.1 Greylisted, come back in 00:05:00') // { kind: 'greylisted', retryAfterMs: 300000 }
 */
export function classifySmtpError(input: SmtpErrorLike | string | Error | unknown): Decision {
  try {
    const reply = toReply(input);
    if (!reply) return { kind: 'transient' };
    const kind = STEPS.reduce<DecisionKind | undefined>((found, step) => found ?? step(reply), undefined) ?? 'transient';
    // A delay only matters when the message will be tried again.
    const retryAfterMs = kind === 'permanent' || kind === 'auth' ? undefined : parseRetryAfter(reply.text);
    return retryAfterMs === undefined ? { kind } : { kind, retryAfterMs };
  } catch {
    return { kind: 'transient' };
  }
}

/**
 * Whether the server refused the envelope for having too many recipients (452 4.5.3), so the
 * sender must split it and send the rest in another transaction. Pure; never throws.
 */
export function isTooManyRecipients(input: SmtpErrorLike | string | Error | unknown): boolean {
  try {
    const reply = toReply(input);
    return reply ? tooManyRecipients(reply) : false;
  } catch {
    return false;
  }
}

/**
 * The delay a reply asks for, in milliseconds: "try again in 5 minutes", "retry after 2 hours", "in 2h30m",
 * "please wait 30s", "come back in 00:05:00". A number without a unit ("(10)", "(S77714)",
 * "4.16.55.1") is not a delay, nor is a window ("100 messages in 1 hour"); "Retry-After: 120" is
 * read as seconds.
 */
export function parseRetryAfter(text: string): number | undefined {
  if (typeof text !== 'string') return undefined;
  const header = RETRY_AFTER_HEADER.exec(text);
  if (header) return Number(header[1]) > 0 ? Number(header[1]) * 1000 : undefined;
  const m = DELAY.exec(text);
  if (!m) return undefined;
  const [, hh, mm, ss, amount, unit] = m;
  let ms: number;
  if (hh !== undefined) {
    ms = (Number(hh) * 3600 + Number(mm) * 60 + Number(ss)) * 1000;
  } else {
    let size = unitMs(unit ?? '');
    ms = (amount !== undefined ? Number(amount) : 1) * size; // "a minute", "an hour"
    // Smaller units that follow add up ("2h30m"); a larger or equal one is something else.
    let rest = text.slice(m.index + m[0].length);
    for (let part = DELAY_PART.exec(rest); part && unitMs(part[2]!) < size; part = DELAY_PART.exec(rest)) {
      size = unitMs(part[2]!);
      ms += Number(part[1]) * size;
      rest = rest.slice(part[0].length);
    }
  }
  return ms > 0 && Number.isFinite(ms) ? Math.round(ms) : undefined;
}

function unitMs(unit: string): number {
  const u = unit.toLowerCase();
  // "ms" and "milliseconds" start with "m" like minutes; tell them apart first.
  return UNIT_MS[u === 'ms' || u.startsWith('milli') ? 'ms' : u.charAt(0)] ?? 0;
}

function toReply(input: unknown): Reply | undefined {
  if (typeof input === 'string') return withCodes({ text: input });
  if (typeof input !== 'object' || input === null) return undefined;
  const o = input as Record<string, unknown>;
  const response = typeof o.response === 'string' ? o.response : '';
  const message = typeof o.message === 'string' ? o.message : '';
  const reply: Reply = { text: response.trim() !== '' ? response : message };
  const responseCode = typeof o.responseCode === 'string' ? Number(o.responseCode) : o.responseCode;
  if (typeof responseCode === 'number' && Number.isInteger(responseCode) && responseCode >= 200 && responseCode < 600) {
    reply.replyCode = responseCode;
  }
  if (typeof o.code === 'string') reply.code = o.code.toUpperCase();
  if (typeof o.command === 'string') reply.command = o.command;
  return withCodes(reply);
}

/** Fills in what the text itself says; a `responseCode` field wins over the text. Then makes the text one line of words. */
function withCodes(reply: Reply): Reply {
  const code = REPLY_CODE.exec(reply.text);
  const parsed = code ? Number(code[1] ?? code[2] ?? code[3]) : undefined;
  if (reply.replyCode === undefined && parsed !== undefined) reply.replyCode = parsed;
  const status = ENHANCED_STATUS.exec(reply.text);
  if (status) reply.status = { subject: Number(status[2]), detail: Number(status[3]) };
  reply.text = oneLine(reply.text);
  return reply;
}

/** The prefix of a multi-line reply's continuation line: "421-4.7.0 ", "421 ". */
const CONTINUATION = /^\s*[2-5]\d\d(?:[ -]|$)(?:[245]\.\d{1,3}\.\d{1,3}\s+)?/;

/**
 * A multi-line reply as one line: each continuation line without its code (its dots would break the
 * words apart: "too many\n421 4.7.0 connections"), and every run of white space one space.
 */
function oneLine(text: string): string {
  if (!/\s\s|[\r\n\t]/.test(text)) return text;
  return text
    .split(/\r?\n/)
    .map((line, i) => (i === 0 ? line : line.replace(CONTINUATION, '')))
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const is4xx = (r: Reply): boolean => r.replyCode !== undefined && r.replyCode >= 400 && r.replyCode < 500;
const is5xx = (r: Reply): boolean => r.replyCode !== undefined && r.replyCode >= 500 && r.replyCode < 600;
const statusIs = (r: Reply, subject: number, detail?: number): boolean =>
  r.status !== undefined && r.status.subject === subject && (detail === undefined || r.status.detail === detail);

function tooManyRecipients(r: Reply): boolean {
  if (r.code === 'EMAXRECIPIENTS') return true;
  // A quota's words win over the status code: "452 4.5.3 Daily message limit exceeded" is the day's quota, not the envelope.
  if (QUOTA.test(r.text)) return false;
  if (TOO_MANY_RECIPIENTS.test(r.text)) {
    // RFC 5321 4.5.3.1.10: 452 is right for this, and a 552 must be read as temporary too.
    // With an X.7.x status the same words are a per-client recipient *rate* (Postfix), not this.
    return statusIs(r, 5, 3) || ((r.replyCode === 452 || r.replyCode === 552) && !statusIs(r, 7));
  }
  // X.5.3 alone is too many recipients, unless the words name another limit (a rate, connections).
  return statusIs(r, 5, 3) && !RATE.test(r.text) && !CONNECTIONS.test(r.text);
}

/** Step 1: reply codes that decide alone. */
function byReplyCode(r: Reply): DecisionKind | undefined {
  if (r.replyCode === 534 || r.replyCode === 535) return 'auth';
  if (r.replyCode !== undefined && r.replyCode >= 530 && r.replyCode < 540 && AUTH_WORDS.test(r.text)) return 'auth';
  if (tooManyRecipients(r)) return 'transient'; // the sender splits the envelope
  return undefined;
}

/** Step 2: enhanced status codes that decide before the words. */
function byStatus(r: Reply): DecisionKind | undefined {
  // X.7.8/X.7.9 are credentials, but Yahoo sends "554 5.7.9 ... policy reasons" for a block.
  if (is5xx(r) && (statusIs(r, 7, 8) || statusIs(r, 7, 9)) && !BLOCKED.test(r.text)) return 'auth';
  // X.7.12 (RFC 4954's "432 4.7.12 A password transition is needed"): only a new password helps, even on a 4xx.
  if (statusIs(r, 7, 12)) return 'auth';
  // X.2.2 mailbox full: its "quota" is the recipient's, never our sending quota.
  if (statusIs(r, 2, 2)) return is5xx(r) ? 'permanent' : 'transient';
  return undefined;
}

/** Step 3: the meaning of the words, most specific first. */
function byWords(r: Reply): DecisionKind | undefined {
  const t = r.text;
  if (t === '') return undefined;
  if (is5xx(r)) return byWords5xx(t);
  if (NO_RETRY.test(t)) return 'permanent';
  if (GREYLIST.test(t)) return 'greylisted';
  if (RECIPIENT_THROTTLE.test(t)) return 'recipient-throttled';
  if (MAILBOX_FULL.test(t) || MESSAGE_QUOTA.test(t)) return 'transient';
  if (QUOTA.test(t)) return 'quota-exceeded';
  // A 4xx code of the server's own ("460 too many messages") may cap a connection as well as a pace: its
  // pace words do not slow the lane, and its class decides (transient).
  const paceWords = !is4xx(r) || STANDARD_4XX.has(r.replyCode!);
  if (paceWords && CONNECTIONS.test(t)) return 'connection-limited';
  if (paceWords && RATE.test(t)) return 'rate-limited';
  // Read before the status defaults: "452 4.4.5 Insufficient disk space" is the server's own trouble, not congestion.
  if (!is5xx(r) && SYSTEM_TROUBLE.test(t)) return 'transient';
  // Without a reply, the words are nodemailer's own ("Invalid login"); with a non-53x reply,
  // "authentication failed" is more often SPF/DKIM/DMARC than our credentials.
  if (r.replyCode === undefined && AUTH_WORDS.test(t)) return 'auth';
  return undefined;
}

/**
 * Step 3 for a 5xx: sending again will not help (RFC 5321 4.2.1), whatever the words. "550 5.7.1 Too
 * much mail from …" and "554 … high volume of unsolicited messages" are refusals, not a pace to slow
 * down to. A sending quota is the one exception (Gmail's 550 5.4.5: it resets).
 */
function byWords5xx(t: string): DecisionKind | undefined {
  if (ACCOUNT_STOPPED.test(t)) return 'auth';
  if (MAILBOX_FULL.test(t) || MESSAGE_QUOTA.test(t)) return 'permanent';
  if (QUOTA.test(t)) return 'quota-exceeded';
  if (BLOCKED.test(t) || GREYLIST.test(t) || RECIPIENT_THROTTLE.test(t) || CONNECTIONS.test(t) || RATE.test(t)) return 'permanent';
  return undefined;
}

/** Step 4: what an enhanced status code means when the words said nothing. */
function byStatusDefault(r: Reply): DecisionKind | undefined {
  if (is5xx(r)) return undefined; // the reply class decides (step 8): permanent
  if (statusIs(r, 4, 5) || statusIs(r, 7, 28)) return 'rate-limited'; // mail system congestion; Gmail's rate limit
  if (!is4xx(r)) return undefined;
  if (statusIs(r, 2, 1)) return 'recipient-throttled'; // mailbox temporarily disabled or throttled
  // Microsoft 365 / Outlook.com's 4.7.500–4.7.699 and 4.7.850–4.7.899: IP throttling ("ramp up slowly"), whatever
  // the words ("Access denied, please try again later").
  const detail = statusIs(r, 7) ? r.status!.detail : 0;
  if ((detail >= 500 && detail <= 699) || (detail >= 850 && detail <= 899)) return 'rate-limited';
  if (statusIs(r, 3) || statusIs(r, 4)) return 'transient'; // their system or network, not our pace
  return undefined;
}

/** Step 5: words that only say "temporary", when nothing more specific has decided. */
function byTemporaryWords(r: Reply): DecisionKind | undefined {
  return !is5xx(r) && TEMPORARY.test(r.text) ? 'transient' : undefined;
}

/** Step 6: nodemailer's code. A reply, when there is one, says more than the code. */
function byCode(r: Reply): DecisionKind | undefined {
  if (r.code === undefined) return undefined;
  if (AUTH_CODES.has(r.code) && (r.replyCode === undefined || is5xx(r))) return 'auth';
  if (r.replyCode !== undefined) return undefined;
  if (PERMANENT_CODES.has(r.code)) return 'permanent';
  if (TRANSIENT_CODES.has(r.code)) return 'transient';
  return undefined;
}

/** Step 7: the command that failed. */
function byCommand(r: Reply): DecisionKind | undefined {
  if (r.command === undefined) return undefined;
  if (AUTH_COMMAND.test(r.command) && is5xx(r)) return 'auth';
  if (r.command === 'CONN' && r.replyCode === undefined) return 'transient';
  return undefined;
}

/** Step 8: the reply class. */
function byReplyClass(r: Reply): DecisionKind | undefined {
  // A bare 421 is "service not available, closing channel"; with "try again later" it is a deferral.
  if (r.replyCode === 421) return DEFERRAL.test(r.text) ? 'rate-limited' : 'transient';
  if (r.replyCode === 503) return 'transient'; // bad sequence: the session's fault, not the message's
  if (is4xx(r)) return 'transient';
  if (is5xx(r)) return 'permanent';
  return undefined;
}
