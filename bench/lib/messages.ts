/**
 * The messages every contender sends: the same size and shape for all, each with its own
 * Message-ID so that the receiver's record tells lost and duplicated messages apart.
 */
import type { SendMailOptions } from 'nodemailer';
import type { Message } from '../../src/index.js';

/** About 1 KB of body, the size of a short plain-text notification. */
const BODY = `${'Hello from the mailpacer benchmark. This line pads the body to a realistic size. '.repeat(12)}\n`;

export interface BenchMessage {
  /** Idempotency key (mailpacer's `id`); nodemailer contenders do not send it. */
  id: string;
  mail: SendMailOptions & { messageId: string };
}

/** `n` messages tagged `tag`: Message-ID `<tag-i@bench.mailpacer.test>`, one recipient each. */
export function makeMessages(tag: string, n: number): BenchMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}-${i}`,
    mail: {
      from: 'bench@mailpacer.test',
      to: `reader-${i}@example.test`,
      subject: `mailpacer bench ${tag} #${i}`,
      text: BODY,
      messageId: `<${tag}-${i}@bench.mailpacer.test>`,
    },
  }));
}

// Both contenders get a fresh object per message built the same way, as an application builds one
// from a row: an object literal of the same five fields (plus the `id` for mailpacer). Until
// 2026-11-26 mailpacer's was `{ ...mail, id }`, which V8 cannot clone fast: built and copied as
// mailpacer copies it, about 1.4 µs per message against 0.16–0.18 µs for a literal
// (bench/message-shape.ts), and 3.6 µs more per message than raw nodemailer's `{ ...mail }` in the
// profile of a burst run (docs/benchmarks.md).

/** A message as mailpacer takes it: nodemailer's options plus the `id`. */
export function forMailpacer({ id, mail }: BenchMessage): Message {
  return { id, from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId };
}

/** A fresh copy of nodemailer's options (nodemailer may write into the object it is given). */
export function forNodemailer({ mail }: BenchMessage): SendMailOptions {
  return { from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId };
}
