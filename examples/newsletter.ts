// Sends a newsletter to every subscriber of a database cursor: a resumable batch that paces
// itself, logs retries and prints its progress. Ctrl-C stops it cleanly; a re-run resumes.
// Run: npx tsx examples/newsletter.ts
//   SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASS: your server; unset: a local throttling test server
//   (mailpacer/testing) that takes 40 messages a second, greylists some addresses and fails 2 %.
//   REDIS_URL: keep limits and the batch ledger in Redis, so that a re-run in another process
//   skips what was sent (run it twice: the second run sends nothing); unset: in-process state.
//   BATCH_ID: the batch id. @default 'newsletter-2026-11'
import { createMailer, isBatchSourceError, type BatchReport, type ProgressEvent, type RetryEvent } from 'mailpacer';
import { startThrottlingSmtpServer } from 'mailpacer/testing';

interface Subscriber {
  email: string;
  name: string;
}

const SUBSCRIBERS = 300;

// A database cursor: rows come a page at a time, only as fast as the batch takes them.
async function* subscribers(count: number): AsyncGenerator<Subscriber> {
  const pageSize = 50;
  for (let offset = 0; offset < count; offset += pageSize) {
    await new Promise((resolve) => setTimeout(resolve, 5)); // a round trip to the database
    for (let i = offset; i < Math.min(count, offset + pageSize); i++) yield { email: `reader${i}@example.net`, name: `Reader ${i}` };
  }
}

const local = process.env.SMTP_HOST
  ? undefined
  : await startThrottlingSmtpServer({
      rate: { max: 40, perMs: 1_000 },
      greylist: { delayMs: 500 },
      greylistRecipients: (address) => address.startsWith('reader7'),
      transientFailureRate: 0.02,
    });
const transport = local
  ? local.transportOptions()
  : { host: process.env.SMTP_HOST, port: Number(process.env.SMTP_PORT ?? 587), auth: { user: process.env.SMTP_USER ?? '', pass: process.env.SMTP_PASS ?? '' } };

const seconds = (ms: number) => `${(ms / 1_000).toFixed(1)}s`;

const mailer = createMailer({
  ...(process.env.REDIS_URL && { redis: process.env.REDIS_URL, keyPrefix: 'mailpacer-example' }),
  providers: { main: { transport, rate: { max: 50, per: '1s' }, maxConnections: 3 } },
  retry: { minDelay: '250ms', maxDelay: '5s', greylistDelay: '1s' },
  hooks: {
    onRetry(e: RetryEvent) {
      console.log(`  retry ${e.messageId} (attempt ${e.attempt} failed: ${e.decision}, ${e.response ?? e.responseCode}); again in ${seconds(e.delayMs)}`);
    },
    onProgress(e: ProgressEvent) {
      const eta = e.etaMs === undefined ? '?' : seconds(e.etaMs);
      console.log(`${e.batchId}: ${e.sent} sent, ${e.failed} failed, ${e.skipped} skipped, ${e.inFlight} in flight · ${e.ratePerSecond.toFixed(1)}/s · ETA ${eta}`);
    },
  },
});
mailer.on('throttle', (e) => console.log(`  lane ${e.lane}: ${e.action} (${e.decision}), now ${e.rate.toFixed(1)}/s`));

// Ctrl-C: nothing new starts, sends on the wire finish, and a re-run picks up the rest.
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());

const render = (s: Subscriber) => `<p>Hello ${s.name},</p><p>Here is what happened this month.</p>`;

let report: BatchReport;
try {
  report = await mailer.sendBatch(subscribers(SUBSCRIBERS), {
    id: process.env.BATCH_ID ?? 'newsletter-2026-11',
    build: (s) => ({
      id: s.email, // the idempotency key: a re-run never sends to this address twice
      from: 'Newsletter <news@example.org>',
      to: { name: s.name, address: s.email },
      subject: 'November news',
      html: render(s),
      text: `Hello ${s.name}, here is what happened this month.`,
    }),
    total: SUBSCRIBERS, // the cursor cannot tell its length: this gives the ETA
    progressInterval: '1s',
    signal: stop.signal,
  });
} catch (error) {
  // The cursor failed (its database went away): what was started has settled, and the report
  // says what was done; a re-run with the same id sends the rest.
  if (!isBatchSourceError(error)) throw error;
  console.error(`the subscriber cursor failed: ${String(error.cause)}`);
  report = error.report;
  process.exitCode = 1;
} finally {
  await mailer.close();
  await local?.close();
}

console.log(
  `\n${report.id}: ${report.sent} sent, ${report.failed} failed, ${report.skipped} skipped, ${report.inDoubt} in doubt, ${report.pending} pending` +
    ` of ${report.total} in ${seconds(report.durationMs)}${report.aborted ? ' (stopped: run again to resume)' : ''}`,
);
for (const failure of report.failures) console.log(`  failed ${failure.id}: ${failure.decision} ${failure.response ?? failure.message}`);
if (report.inDoubt > 0) console.log(`  in doubt (not resent): ${report.inDoubtIds.join(', ')}`);
