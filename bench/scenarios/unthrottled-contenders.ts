/**
 * The contenders of the unthrottled-overhead scenario, shared by the scenario (which reports them)
 * and its child process (which runs one of them): see unthrottled.ts.
 */
import nodemailer from 'nodemailer';
import type { Mailer } from '../lib/mailpacer.js';
import { forMailpacer, forNodemailer, type BenchMessage } from '../lib/messages.js';
import { REDIS_URL } from '../lib/redis-url.js';

/** Where a contender sends: the receiver's address. */
export interface Receiver {
  host: string;
  port: number;
}

export const CONNECTIONS = 8;
export const BATCH_CONCURRENCY = 64;
export const MEMORY_GOAL = 0.9;
export const REDIS_GOAL = 0.8;

export interface Contender {
  key: string;
  label: string;
  settings: string;
  /** Compared with the raw nodemailer runs beside it (unthrottled.ts); `undefined` for the baselines and for information rows. */
  goal?: number;
  baseline?: boolean;
  redis?: boolean;
  /** Prepares a sender for one run; `send` is what is timed. */
  setup(sink: Receiver, prefix: string): Promise<{ send(messages: BenchMessage[]): Promise<number>; close(): Promise<void> }>;
}

export function pool(sink: Receiver, maxConnections = CONNECTIONS) {
  return nodemailer.createTransport({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections });
}

/**
 * A mailer from the built package, imported only by the processes that run mailpacer (raw
 * nodemailer's load nothing of it), or from another build's `createMailer` (bench/ab-one.ts).
 */
export async function mailer(sink: Receiver, redis: { prefix: string } | undefined, create?: (typeof import('../lib/mailpacer.js'))['createMailer']): Promise<Mailer> {
  const createMailer = create ?? (await import('../lib/mailpacer.js')).createMailer;
  return createMailer({
    ...(redis && { redis: REDIS_URL, keyPrefix: redis.prefix }),
    providers: { sink: { transport: { host: sink.host, port: sink.port, secure: false, ignoreTLS: true }, maxConnections: CONNECTIONS } },
  });
}

/**
 * Sends through `mailer.sendBatch`, `concurrency` at a time; resolves with the number sent. Each
 * message is built as the batch reads it (as a cursor feeds a batch, and as the raw nodemailer
 * contenders build theirs), not all of them before the first send.
 */
export async function batch(m: Mailer, messages: BenchMessage[], id?: string): Promise<number> {
  function* built() {
    for (const message of messages) yield forMailpacer(message);
  }
  const report = await m.sendBatch(built(), { concurrency: BATCH_CONCURRENCY, total: messages.length, ...(id && { id }) });
  if (report.sent !== messages.length) throw new Error(`sendBatch sent ${report.sent} of ${messages.length}: ${report.failures[0]?.message ?? ''}`);
  return report.sent;
}

/**
 * Runs `fn` over `items` with at most `limit` in flight: `limit` loops take the next item in turn.
 * `fn` is also told which loop runs it (0 to `limit` − 1), to spread the items over senders.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, loop: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (loop: number) => {
    while (next < items.length) await fn(items[next++]!, loop);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, (_, loop) => worker(loop)));
}

/**
 * Eight nodemailer pools of one connection each, mailpacer's shape, for the A/B scripts
 * (`raw-8x1`): 64 messages in flight, loop w sending through pool w % 8.
 */
export function eightSinglePools(sink: Receiver): { send(messages: BenchMessage[]): Promise<void>; close(): void } {
  const pools = Array.from({ length: CONNECTIONS }, () => pool(sink, 1));
  return {
    send: (messages) => mapLimit(messages, BATCH_CONCURRENCY, (m, w) => pools[w % CONNECTIONS]!.sendMail(forNodemailer(m))),
    close: () => pools.forEach((one) => one.close()),
  };
}

export const contenders: Contender[] = [
  {
    key: 'nodemailer-all',
    label: 'nodemailer pool, sendMail all at once',
    settings: `nodemailer.createTransport({ pool: true, maxConnections: ${CONNECTIONS} }) (maxMessages 100 by default); Promise.all of sendMail for every message`,
    baseline: true,
    async setup(sink) {
      const transport = pool(sink);
      return {
        send: async (messages) => (await Promise.all(messages.map((m) => transport.sendMail(forNodemailer(m))))).length,
        close: async () => transport.close(),
      };
    },
  },
  {
    key: 'nodemailer-64',
    label: `nodemailer pool, ${BATCH_CONCURRENCY} at a time`,
    settings: `the same pool; sendMail with at most ${BATCH_CONCURRENCY} messages in flight`,
    baseline: true,
    async setup(sink) {
      const transport = pool(sink);
      return {
        async send(messages) {
          await mapLimit(messages, BATCH_CONCURRENCY, (m) => transport.sendMail(forNodemailer(m)));
          return messages.length;
        },
        close: async () => transport.close(),
      };
    },
  },
  {
    key: 'mailpacer-batch',
    label: `mailpacer memory, sendBatch (concurrency ${BATCH_CONCURRENCY})`,
    settings: `createMailer({ providers: { sink: { transport, maxConnections: ${CONNECTIONS} } } }) (no rate, in-process limits, maxMessagesPerConnection 100 by default); sendBatch(messages, { concurrency: ${BATCH_CONCURRENCY} })`,
    goal: MEMORY_GOAL,
    async setup(sink) {
      const m = await mailer(sink, undefined);
      return { send: (messages) => batch(m, messages), close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-send',
    label: 'mailpacer memory, send() all at once',
    settings: 'the same mailer; Promise.all of mailer.send() for every message',
    goal: MEMORY_GOAL,
    async setup(sink) {
      const m = await mailer(sink, undefined);
      return { send: async (messages) => (await Promise.all(messages.map((msg) => m.send(forMailpacer(msg))))).length, close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-redis',
    label: `mailpacer Redis, sendBatch (concurrency ${BATCH_CONCURRENCY})`,
    settings: `the same, with redis: '${REDIS_URL}' and a unique keyPrefix per run (limits and adaptive state in Redis; no batch id, so no ledger)`,
    goal: REDIS_GOAL,
    redis: true,
    async setup(sink, prefix) {
      const m = await mailer(sink, { prefix });
      return { send: (messages) => batch(m, messages), close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-redis-ledger',
    label: 'mailpacer Redis, sendBatch with a batch id (ledger)',
    settings: 'the same, with sendBatch({ id }): every message is also claimed, marked sending and marked sent in the Redis ledger (resumable, no duplicates); information only, no goal',
    redis: true,
    async setup(sink, prefix) {
      const m = await mailer(sink, { prefix });
      return { send: (messages) => batch(m, messages, `${prefix}-batch`), close: () => m.close() };
    },
  },
];
