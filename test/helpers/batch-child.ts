// A batch run in a process of its own, for tests that kill it (SIGKILL) or run two at once.
// Run: node --import tsx test/helpers/batch-child.ts, with BATCH_CHILD set to a BatchChildConfig as JSON.
// It prints one JSON line per event on stdout: `ready` (mailer created), `progress`, then `report`.
// With `waitForGo`, it starts the batch only once a line arrives on stdin, so that a test can
// start two runs at the same moment.
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createMailer, type BatchReport } from '../../src/index.js';

/** What the child reads from `BATCH_CHILD`. */
export interface BatchChildConfig {
  redis: string;
  keyPrefix: string;
  batchId: string;
  smtp: { host: string; port: number };
  /** Messages in the batch: ids `crashIds(n)`. */
  n: number;
  /** @default 4 */
  maxConnections?: number;
  /** @default false */
  resendInDoubt?: boolean;
  /** Wait for a line on stdin before starting the batch. @default false */
  waitForGo?: boolean;
}

/** One line the child prints. */
export type BatchChildLine =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; sent: number; skipped: number; inDoubt: number; failed: number; inFlight: number }
  | { type: 'report'; report: BatchReport };

/** The message ids of a batch of `n`: each doubles as the Message-ID, so the server's records name them. */
export const batchIds = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${String(i).padStart(6, '0')}@batch.mailpacer.test`);

/** The message for an id: the same Message-ID in every run, so that a resend shows as a duplicate. */
export const buildMessage = (id: string) => ({ id, messageId: `<${id}>`, from: 'news@example.org', to: `${id.split('@')[0]}@example.net`, subject: 'Hi', text: 'Hello' });

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BATCH_CHILD ?? '') as BatchChildConfig;
  const print = (line: BatchChildLine): void => {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const mailer = createMailer({
    redis: config.redis,
    keyPrefix: config.keyPrefix,
    providers: { main: { transport: { ...config.smtp, secure: false, ignoreTLS: true }, maxConnections: config.maxConnections ?? 4 } },
    retry: { minDelay: '50ms', maxDelay: '500ms' },
    hooks: { onProgress: (e) => print({ type: 'progress', sent: e.sent, skipped: e.skipped, inDoubt: e.inDoubt, failed: e.failed, inFlight: e.inFlight }) },
  });
  print({ type: 'ready', pid: process.pid });
  if (config.waitForGo) {
    const lines = createInterface({ input: process.stdin });
    await once(lines, 'line');
    lines.close();
  }
  // An async source, as a database cursor would be.
  async function* source() {
    yield* batchIds(config.n);
  }
  const report = await mailer.sendBatch(source(), { id: config.batchId, build: buildMessage, resendInDoubt: config.resendInDoubt ?? false, progressInterval: 100 });
  print({ type: 'report', report });
  await mailer.close();
}

if (process.env.BATCH_CHILD) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  });
}
