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

export interface PreparedMessage {
  id: string | undefined;
  provider: string | undefined;
  /** What goes to nodemailer: `id` and `provider` removed, a `messageId` fixed for every attempt. */
  mail: SendMailOptions;
  recipients: string[];
}

type AddressInput = SendMailOptions['to'];

const BARE_ADDRESS = /^[^\s<>,;:"()[\]\\@]+@[A-Za-z0-9.-]+$/;

// Message-IDs: 64 random bits per process and a counter, unique without a UUID per message.
const MESSAGE_ID_PREFIX = `${Date.now().toString(36)}.${randomBytes(8).toString('hex')}`;
let messageCount = 0;

/**
 * Checks a message and readies it for sending, or says what is wrong with it. The Message-ID is
 * fixed here, once, so that every retry carries the same one and receivers can tell duplicates.
 */
export function prepareMessage(message: Message): PreparedMessage | { problem: string } {
  if (typeof message !== 'object' || message === null) return { problem: 'expected a message object' };
  const { id, provider, ...mail } = message;
  if (id !== undefined && (typeof id !== 'string' || id.length === 0)) return { problem: 'message id must be a non-empty string' };
  const envelopeTo = mail.envelope && typeof mail.envelope === 'object' ? (mail.envelope as { to?: AddressInput }).to : undefined;
  // Without cc and bcc (a newsletter's usual message), `to` alone: one bare address needs no parsing.
  const listed = envelopeTo !== undefined ? addresses(envelopeTo) : mail.cc == null && mail.bcc == null ? addresses(mail.to) : addresses([mail.to, mail.cc, mail.bcc] as AddressInput);
  if (listed.length === 0) return { problem: 'message has no recipients (to, cc, bcc or envelope.to)' };
  for (const address of listed) if (!isAddress(address)) return { problem: `malformed recipient address ${JSON.stringify(address)}` };
  if (!mail.messageId) mail.messageId = `<${MESSAGE_ID_PREFIX}.${(++messageCount).toString(36)}@${senderDomain(mail.from)}>`;
  return { id, provider, mail, recipients: listed };
}

/** Every address of an address field, however it was written. */
export function addresses(input: AddressInput): string[] {
  if (input === undefined || input === null || input === '') return [];
  // One bare address (a newsletter's `to`): no parser, no de-duplication to do.
  if (typeof input === 'string' && BARE_ADDRESS.test(input)) return [input];
  const items: unknown[] = Array.isArray(input) ? (input as unknown[]).flat(4) : [input];
  const out: string[] = [];
  for (const item of items) {
    if (typeof item === 'string') {
      // A bare address (the usual newsletter case) needs no parser.
      if (BARE_ADDRESS.test(item)) {
        out.push(item);
        continue;
      }
      const parsed = addressparser(item, { flatten: true }).map((entry) => entry.address || entry.name).filter(Boolean);
      // Text that parses to no address at all is kept as it is, so that it is reported as malformed.
      out.push(...(parsed.length > 0 ? parsed : item.trim() ? [item.trim()] : []));
    } else if (item && typeof item === 'object' && typeof (item as { address?: unknown }).address === 'string') {
      out.push((item as { address: string }).address);
    }
  }
  return [...new Set(out)];
}

function isAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  return at > 0 && at < address.length - 1 && !/\s/.test(address) && !address.slice(at + 1).startsWith('.');
}

function senderDomain(from: SendMailOptions['from']): string {
  const [address] = addresses(from);
  const domain = address?.split('@')[1];
  return domain && /^[A-Za-z0-9.-]+$/.test(domain) ? domain : 'mailpacer.invalid';
}
