import { randomBytes } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import type { SendMailOptions } from 'nodemailer';

/** A message: nodemailer's `SendMailOptions`, plus an idempotency key and a lane. */
export interface Message extends SendMailOptions {
  /** Idempotency key: a batch sends each `id` once. Also names the message in events and errors. */
  id?: string;
  /** The provider to send through. @default the first provider */
  provider?: string;
}

/** A message refused before sending: what is wrong, and the well-formed recipients it named (who did not get it). */
export interface Refusal {
  problem: string;
  recipients: string[];
}

export interface PreparedMessage {
  id: string | undefined;
  provider: string | undefined;
  /** What goes to nodemailer: `id` and `provider` removed, a `messageId` fixed for every attempt. */
  mail: SendMailOptions;
  recipients: string[];
}

type AddressInput = SendMailOptions['to'];

// One bare address at an ASCII domain (a newsletter's `to`): nothing in it for nodemailer's parser
// to read differently, so it is taken as it is. Whatever this refuses goes the long way.
const BARE_ADDRESS =
  /^[^\s<>,;:"()[\]\\@\x00-\x1f\x7f-\x9f]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// nodemailer drops control characters and reads a line break as a space, so text holding one is
// not sent as written ("a@x.org\r\nBcc: b@y.org" went to b@y.org alone). Tab is folding whitespace.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/;
const LOCAL_PART = /^[^\s<>,;:"()[\]\\@\x00-\x1f\x7f-\x9f]+$/;
// Letters, digits and hyphens (RFC 5321), or an IDN's Unicode, 63 at most, no hyphen at either end.
const LABEL = /^[A-Za-z0-9\u00a1-\uffff](?:[A-Za-z0-9\u00a1-\uffff-]{0,61}[A-Za-z0-9\u00a1-\uffff])?$/;
const DOMAIN_LITERAL = /^\[(?:\d{1,3}(?:\.\d{1,3}){3}|IPv6:[\dA-Fa-f:.]+)\]$/;
/** nodemailer flattens nested arrays of addresses at any depth; deeper than this is a mistake (or a cycle). */
const MAX_NESTING = 8;
const ADDRESS_FIELDS = ['from', 'sender', 'replyTo', 'to', 'cc', 'bcc'] as const;
const ENVELOPE_FIELDS = ['from', 'to', 'cc', 'bcc'] as const;

// Message-IDs: 64 random bits per process and a counter, unique without a UUID per message.
const MESSAGE_ID_PREFIX = `${Date.now().toString(36)}.${randomBytes(8).toString('hex')}`;
let messageCount = 0;

/**
 * Checks a message and readies it for sending, or says what is wrong with it. The Message-ID is
 * fixed here, once, so that every retry carries the same one and receivers can tell duplicates.
 */
export function prepareMessage(message: Message): PreparedMessage | Refusal {
  if (typeof message !== 'object' || message === null) return { problem: 'expected a message object', recipients: [] };
  const { id, provider, ...mail } = message;
  // The copy above is shallow: address lists and objects are copied too, so that a caller who
  // changes them in place while the message waits changes neither whom it goes to nor the events.
  snapshotFields(mail as Record<string, unknown>, ADDRESS_FIELDS);
  // With an envelope, nodemailer sends to its to, cc and bcc, and to none of the headers'.
  let listed = mail as Record<string, unknown>;
  if (typeof mail.envelope === 'object' && mail.envelope !== null) {
    listed = { ...mail.envelope };
    snapshotFields(listed, ENVELOPE_FIELDS);
    mail.envelope = listed as SendMailOptions['envelope'];
  }
  const recipients: string[] = [];
  // Each field is listed even after one is bad: a refusal names every well-formed recipient.
  const badTo = list(listed.to, recipients, 0);
  const badCc = list(listed.cc, recipients, 0);
  const bad = badTo ?? badCc ?? list(listed.bcc, recipients, 0);
  if (id !== undefined && (typeof id !== 'string' || id.length === 0)) return { problem: 'message id must be a non-empty string', recipients: unique(recipients) };
  if (bad !== undefined) return { problem: `malformed recipient address ${bad}`, recipients: unique(recipients) };
  if (recipients.length === 0) return { problem: 'message has no recipients (to, cc, bcc or envelope.to)', recipients };
  if (!mail.messageId) mail.messageId = `<${MESSAGE_ID_PREFIX}.${(++messageCount).toString(36)}@${senderDomain(mail.from)}>`;
  return { id, provider, mail, recipients: unique(recipients) };
}

/** Every well-formed address of an address field, however it was written, once each. */
export function addresses(input: AddressInput): string[] {
  const out: string[] = [];
  list(input, out, 0);
  return unique(out);
}

/**
 * Lists the addresses of an address field into `out`, as nodemailer will send to them. Returns the
 * first entry that is not exactly one well-formed address, as written (for the problem), and lists
 * none of a string that holds one.
 */
function list(input: unknown, out: string[], depth: number): string | undefined {
  if (input === undefined || input === null || input === '') return undefined;
  if (typeof input === 'string') {
    if (BARE_ADDRESS.test(input)) {
      out.push(input);
      return undefined;
    }
    return listText(input, out);
  }
  if (Array.isArray(input)) {
    if (depth >= MAX_NESTING) return `(a list nested more than ${MAX_NESTING} deep)`;
    let bad: string | undefined;
    for (const item of input) {
      const itemBad = list(item, out, depth + 1);
      bad ??= itemBad;
    }
    return bad;
  }
  if (typeof input === 'object' && typeof (input as { address?: unknown }).address === 'string') {
    // nodemailer takes an object's address as it is, without reading it as a list.
    const { address } = input as { address: string };
    if (!isAddrSpec(address)) return JSON.stringify(address);
    out.push(address);
    return undefined;
  }
  return describe(input);
}

/**
 * Lists the addresses of address-list text. Every entry must be one mailbox (`a@x.org`,
 * `Name <a@x.org>`, `a@x.org (comment)`, in groups or not), and nodemailer's parser must read the
 * same addresses from it: it rewrites what it cannot read ("john doe@x.org" into doe@x.org,
 * "a@x.org b@y.org" into a@x.org named "b@y.org") rather than refusing it.
 */
function listText(text: string, out: string[]): string | undefined {
  if (CONTROL.test(text)) return JSON.stringify(text);
  const checked: string[] = [];
  const bad = mailboxes(text, checked);
  if (bad !== undefined) return JSON.stringify(bad);
  const parsed = addressparser(text, { flatten: true });
  if (parsed.length !== checked.length || parsed.some((entry, i) => !sameAddress(checked[i]!, entry.address))) return JSON.stringify(text);
  for (const entry of parsed) out.push(entry.address);
  return undefined;
}

/**
 * Splits address-list text at its top-level `,` and `;` (outside quotes, comments, angle brackets
 * and domain literals), drops group names (`Team:`), and pushes each entry's addr-spec onto
 * `found`. Returns the first entry that is not one mailbox, as written.
 */
function mailboxes(text: string, found: string[]): string | undefined {
  let start = 0;
  let angle = false;
  /** An `@`, `<` or `>` outside quotes and comments since `start`: no group name holds one. */
  let special = false;
  /**
   * Words without an address before `Name <a@x.org>`: an unquoted comma in its name, which
   * nodemailer reads as part of it (`Doe, John <j@x.org>`). Anywhere else, a malformed entry.
   */
  let fragment: string | undefined;
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (c === '"' || c === '(' || (c === '[' && text[i - 1] === '@')) {
      i = c === '[' ? text.indexOf(']', i) : closing(text, i);
      if (i < 0) return text.slice(start).trim();
    } else if (c === '<' || c === '>') {
      angle = c === '<';
      special = true;
    } else if (c === '@') {
      special = true;
    } else if (c === ':' && !angle) {
      // A group's name, or a group's inside it (nodemailer flattens those): its members follow.
      if (special || fragment !== undefined) return fragment ?? text.slice(start).trim();
      start = i + 1;
    } else if (i === text.length || (!angle && (c === ',' || c === ';'))) {
      const entry = text.slice(start, i);
      if (entry.trim() !== '') {
        const read = mailbox(entry);
        if (read === undefined) {
          if (special) return fragment ?? entry.trim();
          fragment ??= entry.trim();
        } else if (fragment !== undefined && !read.named) {
          return fragment;
        } else {
          fragment = undefined;
          found.push(read.address);
        }
      }
      start = i + 1;
      special = false;
    }
  }
  return fragment;
}

/**
 * The addr-spec of one entry, `addr-spec` or a display name and `<addr-spec>`, with comments
 * around, and whether it has a display name; `undefined` for anything else (words around a bare
 * address, a second address, text after `>`, an unclosed `<`). Quotes and comments are known to
 * be closed here.
 */
function mailbox(entry: string): { address: string; named: boolean } | undefined {
  // The entry with its comments read as spaces: a comment separates, it does not join.
  let plain = '';
  let from = 0;
  let open = -1;
  let close = -1;
  for (let i = 0; i < entry.length; i++) {
    const c = entry[i];
    if (c === '"') i = closing(entry, i);
    else if (c === '[' && entry[i - 1] === '@') i = entry.indexOf(']', i);
    else if (c === '(') {
      plain += `${entry.slice(from, i)} `;
      i = closing(entry, i);
      from = i + 1;
    } else if (c === '<' || c === '>') {
      if ((c === '<' ? open : close) >= 0) return undefined;
      if (c === '<') open = plain.length + i - from;
      else close = plain.length + i - from;
    }
  }
  plain += entry.slice(from);
  if (open < 0 && close < 0) {
    const address = plain.trim();
    return isAddrSpec(address) ? { address, named: false } : undefined;
  }
  if (open < 0 || close < open || plain.slice(close + 1).trim() !== '') return undefined;
  const address = plain.slice(open + 1, close).trim();
  return isAddrSpec(address) ? { address, named: plain.slice(0, open).trim() !== '' } : undefined;
}

/**
 * Whether an address is one `local@domain`: one `@` outside a quoted local part (`"john doe"@x.org`
 * is one address), no space or special outside the quotes, and a domain of sane labels
 * (`bücher.de`, not `exa..mple`, `-x.org`) or an IP literal.
 */
function isAddrSpec(address: string): boolean {
  if (CONTROL.test(address)) return false;
  let at: number;
  if (address[0] === '"') {
    at = closing(address, 0) + 1;
    if (at < 3 || address[at] !== '@') return false;
  } else {
    at = address.indexOf('@');
    if (at < 1 || !LOCAL_PART.test(address.slice(0, at))) return false;
  }
  const domain = address.slice(at + 1);
  if (domain[0] === '[') return DOMAIN_LITERAL.test(domain);
  return !/\s/.test(domain) && domain.split('.').every((label) => LABEL.test(label));
}

/** Whether nodemailer's parser read the address that was checked: it unquotes `"john"@x.org`. */
function sameAddress(checked: string, parsed: string): boolean {
  if (checked === parsed) return true;
  if (checked[0] !== '"') return false;
  const end = closing(checked, 0);
  return `${checked.slice(1, end).replace(/\\(.)/g, '$1')}${checked.slice(end + 1)}` === parsed;
}

/** The index of what closes the quoted string or the comment (comments nest) opening at `start`, or -1. */
function closing(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (text[start] === '"') {
      if (c === '"' && i > start) return i;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

/**
 * A copy of an address field that later changes to the caller's arrays and address objects do
 * not reach (strings need none).
 */
function snapshot<T>(value: T, depth = 0): T {
  if (Array.isArray(value)) return (depth < MAX_NESTING ? value.map((item: unknown) => snapshot(item, depth + 1)) : value) as T;
  return typeof value === 'object' && value !== null ? { ...value } : value;
}

/** Copies, in place, the fields of `record` named in `keys` that hold arrays or objects (see `snapshot`). */
function snapshotFields(record: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of keys) if (typeof record[key] === 'object' && record[key] !== null) record[key] = snapshot(record[key]);
}

/** The addresses once each; one address (a newsletter's message) is unique already, and not copied. */
const unique = (list: string[]): string[] => (list.length > 1 ? [...new Set(list)] : list);

/** An entry that is neither text nor an address object, for the problem. */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function senderDomain(from: SendMailOptions['from']): string {
  const address = typeof from === 'string' && BARE_ADDRESS.test(from) ? from : addresses(from)[0];
  const domain = address?.slice(address.lastIndexOf('@') + 1);
  return domain && /^[A-Za-z0-9.-]+$/.test(domain) ? domain : 'mailpacer.invalid';
}
