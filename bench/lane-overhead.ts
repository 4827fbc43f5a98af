/**
 * mailpacer's own cost per message, without SMTP: a nodemailer custom transport that answers 250
 * on the next turn of the event loop, 100,000 messages, 64 at a time, raw nodemailer
 * (`createTransport(transport).sendMail`) beside mailpacer (`sendBatch`, one provider, no rate, 8
 * connections), both in this process. Prints client CPU µs per message for three rounds each,
 * after a 20,000-message warm-up.
 *
 *   npm run build && node --expose-gc --import tsx bench/lane-overhead.ts [messages]
 */
import nodemailer from 'nodemailer';
import type { SendMailOptions } from 'nodemailer';
import { createMailer } from './lib/mailpacer.js';

const n = Number(process.argv[2] ?? 100_000);
const transport = {
  name: 'next-tick',
  version: '1',
  send(mail: { data: SendMailOptions }, callback: (error: Error | null, info: unknown) => void) {
    setImmediate(() => callback(null, { messageId: mail.data.messageId, envelope: {}, accepted: [mail.data.to], rejected: [], response: '250 OK' }));
  },
};

const messages = (tag: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `${tag}-${i}`, from: 'bench@mailpacer.test', to: `reader-${i}@example.test`, subject: `mailpacer bench ${i}`, text: 'Hello', messageId: `<${tag}-${i}@bench.mailpacer.test>` }));

async function raw(list: ReturnType<typeof messages>): Promise<void> {
  const transporter = nodemailer.createTransport(transport);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const { id: _id, ...mail } = list[next++]!;
      await transporter.sendMail(mail);
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
}

async function mailpacer(list: ReturnType<typeof messages>): Promise<void> {
  const mailer = createMailer({ providers: { p: { transport, maxConnections: 8 } } });
  const report = await mailer.sendBatch(list, { concurrency: 64 });
  await mailer.close();
  if (report.sent !== list.length) throw new Error(`sent ${report.sent} of ${list.length}`);
}

async function measure(run: (list: ReturnType<typeof messages>) => Promise<void>, tag: string, count: number): Promise<number> {
  const list = messages(tag, count);
  (globalThis as { gc?: () => void }).gc?.();
  const cpu = process.cpuUsage();
  await run(list);
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / count;
}

await measure(raw, 'warm-raw', 20_000);
await measure(mailpacer, 'warm-mp', 20_000);
const rows: Record<string, number[]> = { 'raw nodemailer': [], mailpacer: [] };
for (let round = 0; round < 3; round++) {
  rows['raw nodemailer']!.push(await measure(raw, `raw-${round}`, n));
  rows.mailpacer!.push(await measure(mailpacer, `mp-${round}`, n));
}
for (const [name, values] of Object.entries(rows)) console.log(`${name.padEnd(15)} ${values.map((v) => v.toFixed(1)).join(' / ')} µs CPU per message (${n.toLocaleString('en-US')} messages per round)`);
