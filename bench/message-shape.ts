/**
 * What the way a message object is built costs once mailpacer copies it (`prepareMessage` takes
 * `id` and `provider` out with an object rest): `{ ...mail, id }`, the unthrottled scenario's
 * mailpacer helper until 2026-11-26, against an object literal of the same fields, its helper since,
 * and `{ ...mail }`, raw nodemailer's helper until then. A micro-benchmark in one warm loop: it
 * shows the shapes' relative cost, not what they cost among everything else a send does.
 *
 *   node --import tsx bench/message-shape.ts [iterations=1000000]
 */
import { makeMessages, type BenchMessage } from './lib/messages.js';

const n = Number(process.argv[2] ?? 1_000_000);
const messages = makeMessages('shape', 2_000);

const shapes: Record<string, (m: BenchMessage) => Record<string, unknown>> = {
  '{ ...mail, id }': (m) => ({ ...m.mail, id: m.id }),
  'literal with id': ({ id, mail }) => ({ id, from: mail.from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId }),
  '{ ...mail }': (m) => ({ ...m.mail }),
};

/** mailpacer's copy (src/message.ts, prepareMessage). */
function copy(message: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, provider: _provider, ...mail } = message;
  return mail;
}

let sink = 0;
for (let round = 1; round <= 3; round++) {
  for (const [label, build] of Object.entries(shapes)) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += (copy(build(messages[i % messages.length]!)).to as string).length;
    const ns = Number(process.hrtime.bigint() - t0) / n;
    console.log(`round ${round}  ${label.padEnd(16)} built and copied: ${ns.toFixed(0)} ns per message`);
  }
}
if (sink === 0) console.log('');
