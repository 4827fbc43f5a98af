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

/** A message as mailpacer takes it: nodemailer's options plus the `id`. */
export function forMailpacer(message: BenchMessage): Message {
  return { ...message.mail, id: message.id };
}

/** A fresh copy of nodemailer's options (nodemailer may write into the object it is given). */
export function forNodemailer(message: BenchMessage): SendMailOptions {
  return { ...message.mail };
}
