/**
 * Unthrottled overhead: a receiver that takes everything at once, no limits configured. What does
 * mailpacer's pacing machinery (lanes, limiter, retry loop, batch) cost against nodemailer's pool
 * on its own, in throughput and in client CPU per message?
 *
 * Receiver: Postfix's `smtp-sink` in its own process (or, without it, the test server with no
 * limits in a child process), a fresh one per run. Every contender uses 8 connections.
 */
import nodemailer from 'nodemailer';
import { createMailer, type Mailer } from '../lib/mailpacer.js';
import { forMailpacer, forNodemailer, makeMessages, type BenchMessage } from '../lib/messages.js';
import { processCpuMicros } from '../lib/machine.js';
import { deleteKeys, REDIS_URL, redisServerPid } from '../lib/redis.js';
import type { Goal, Row, ScenarioOptions, ScenarioResult } from '../lib/report.js';
import { sinkKind, startSink, type Sink } from '../lib/sink.js';
import { collectGarbage, cpuMicros, withinCap } from '../lib/timing.js';

const CONNECTIONS = 8;
const BATCH_CONCURRENCY = 64;
const MEMORY_GOAL = 0.9;
const REDIS_GOAL = 0.8;

interface Contender {
  key: string;
  label: string;
  settings: string;
  /** Compared with the best raw nodemailer figure; `undefined` for the baselines and for information rows. */
  goal?: number;
  baseline?: boolean;
  redis?: boolean;
  /** Prepares a sender for one run; `send` is what is timed. */
  setup(sink: Sink, prefix: string): { send(messages: BenchMessage[]): Promise<number>; close(): Promise<void> };
}

function pool(sink: Sink) {
  return nodemailer.createTransport({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true, pool: true, maxConnections: CONNECTIONS });
}

function mailer(sink: Sink, redis: { prefix: string } | undefined): Mailer {
  return createMailer({
    ...(redis && { redis: REDIS_URL, keyPrefix: redis.prefix }),
    providers: { sink: { transport: { host: sink.host, port: sink.port, secure: false, ignoreTLS: true }, maxConnections: CONNECTIONS } },
  });
}

/** Sends through `mailer.sendBatch`, `concurrency` at a time; resolves with the number sent. */
async function batch(m: Mailer, messages: BenchMessage[], id?: string): Promise<number> {
  const report = await m.sendBatch(messages.map(forMailpacer), { concurrency: BATCH_CONCURRENCY, ...(id && { id }) });
  if (report.sent !== messages.length) throw new Error(`sendBatch sent ${report.sent} of ${messages.length}: ${report.failures[0]?.message ?? ''}`);
  return report.sent;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const contenders: Contender[] = [
  {
    key: 'nodemailer-all',
    label: 'nodemailer pool, sendMail all at once',
    settings: `nodemailer.createTransport({ pool: true, maxConnections: ${CONNECTIONS} }) (maxMessages 100 by default); Promise.all of sendMail for every message`,
    baseline: true,
    setup(sink) {
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
    setup(sink) {
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
    setup(sink) {
      const m = mailer(sink, undefined);
      return { send: (messages) => batch(m, messages), close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-send',
    label: 'mailpacer memory, send() all at once',
    settings: 'the same mailer; Promise.all of mailer.send() for every message',
    goal: MEMORY_GOAL,
    setup(sink) {
      const m = mailer(sink, undefined);
      return { send: async (messages) => (await Promise.all(messages.map((msg) => m.send(forMailpacer(msg))))).length, close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-redis',
    label: `mailpacer Redis, sendBatch (concurrency ${BATCH_CONCURRENCY})`,
    settings: `the same, with redis: '${REDIS_URL}' and a unique keyPrefix per run (limits and adaptive state in Redis; no batch id, so no ledger)`,
    goal: REDIS_GOAL,
    redis: true,
    setup(sink, prefix) {
      const m = mailer(sink, { prefix });
      return { send: (messages) => batch(m, messages), close: () => m.close() };
    },
  },
  {
    key: 'mailpacer-redis-ledger',
    label: 'mailpacer Redis, sendBatch with a batch id (ledger)',
    settings: 'the same, with sendBatch({ id }): every message is also claimed, marked sending and marked sent in the Redis ledger (resumable, no duplicates); information only, no goal',
    redis: true,
    setup(sink, prefix) {
      const m = mailer(sink, { prefix });
      return { send: (messages) => batch(m, messages, `${prefix}-batch`), close: () => m.close() };
    },
  },
];

interface RunFigures {
  round: number;
  n: number;
  elapsedMs: number;
  perSecond: number;
  cpuMicrosPerMessage: number;
  redisCpuMicrosPerMessage: number | undefined;
  received: number | null;
}

async function runOnce(contender: Contender, n: number, tag: string, prefix: string, redisPid: number | undefined, capMs: number): Promise<Omit<RunFigures, 'round'>> {
  const sink = await startSink();
  const sender = contender.setup(sink, prefix);
  const messages = makeMessages(tag, n);
  collectGarbage();
  const redisBefore = contender.redis ? processCpuMicros(redisPid) : undefined;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let result: Awaited<ReturnType<typeof withinCap<number>>>;
  let elapsedMs: number;
  let cpuUsed: number;
  let redisAfter: number | undefined;
  let received: number | null;
  try {
    result = await withinCap(sender.send(messages), capMs);
    elapsedMs = performance.now() - t0;
    cpuUsed = cpuMicros(cpu);
    redisAfter = contender.redis ? processCpuMicros(redisPid) : undefined;
  } finally {
    await sender.close().catch(() => {});
    received = await sink.stop();
    if (contender.redis) await deleteKeys(`${prefix}:*`).catch(() => 0);
  }
  if (result.timedOut) throw new Error(`${contender.label}: did not finish ${n} messages within ${capMs / 1000} s`);
  if (received !== null && received !== n) throw new Error(`${contender.label}: the receiver counted ${received} messages, expected ${n}`);
  return {
    n,
    elapsedMs,
    perSecond: n / (elapsedMs / 1000),
    cpuMicrosPerMessage: cpuUsed / n,
    redisCpuMicrosPerMessage: redisBefore !== undefined && redisAfter !== undefined ? (redisAfter - redisBefore) / n : undefined,
    received,
  };
}

export async function runUnthrottled(options: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const n = options.quick ? 2_000 : 20_000;
  const rounds = options.quick ? 1 : 3;
  const warmup = options.quick ? 200 : 1_000;
  const capMs = Math.max(60_000, n); // 1,000 messages/s at the very least
  const redisPid = await redisServerPid();
  const runs = new Map<string, RunFigures[]>(contenders.map((c) => [c.key, []]));

  // JIT warm-up of every code path, unmeasured.
  for (const contender of contenders) {
    options.log(`unthrottled: warm-up ${contender.label} (${warmup})`);
    await runOnce(contender, warmup, `${options.runId}-ut-warm-${contender.key}`, `${options.runId}-ut-warm-${contender.key}`, redisPid, capMs);
  }
  // Rounds interleave the contenders, so that a burst of load from elsewhere hits them alike.
  for (let round = 1; round <= rounds; round++) {
    for (const contender of contenders) {
      const tag = `${options.runId}-ut-${round}-${contender.key}`;
      const figures = await runOnce(contender, n, tag, tag, redisPid, capMs);
      runs.get(contender.key)!.push({ round, ...figures });
      options.log(`unthrottled: round ${round}: ${contender.label}: ${Math.round(figures.perSecond)} msg/s, ${Math.round(figures.cpuMicrosPerMessage)} µs CPU/msg`);
    }
  }

  // Each contender's best round (the least disturbed by other load on the machine).
  const best = new Map(contenders.map((c) => [c.key, runs.get(c.key)!.reduce((a, b) => (b.perSecond > a.perSecond ? b : a))]));
  const baseline = Math.max(...contenders.filter((c) => c.baseline).map((c) => best.get(c.key)!.perSecond));
  const baselineCpu = Math.min(...contenders.filter((c) => c.baseline).map((c) => best.get(c.key)!.cpuMicrosPerMessage));
  const baselineLabel = contenders.filter((c) => c.baseline).reduce((a, b) => (best.get(b.key)!.perSecond > best.get(a.key)!.perSecond ? b : a)).label;
  const rows: Row[] = [];
  const goals: Goal[] = [];
  for (const contender of contenders) {
    const figures = best.get(contender.key)!;
    const ratio = figures.perSecond / baseline;
    const pass = contender.goal === undefined ? undefined : ratio >= contender.goal;
    rows.push({
      contender: contender.label,
      messages: n,
      perSecond: figures.perSecond,
      ratio,
      cpu: figures.cpuMicrosPerMessage,
      cpuRatio: baselineCpu / figures.cpuMicrosPerMessage,
      redisCpu: contender.redis ? (figures.redisCpuMicrosPerMessage ?? null) : null,
      rounds: runs
        .get(contender.key)!
        .map((r) => Math.round(r.perSecond))
        .join(' / '),
      goal: pass === undefined ? (contender.baseline ? 'baseline' : 'info') : `${pass ? 'PASS' : 'FAIL'} (≥ ${contender.goal})`,
    });
    if (pass !== undefined) {
      goals.push({
        contender: contender.label,
        goal: `≥ ${contender.goal} of raw nodemailer's throughput`,
        actual: `${Math.round(figures.perSecond)} msg/s = ${ratio.toFixed(2)} × ${Math.round(baseline)} msg/s (${baselineLabel}); ${Math.round(figures.cpuMicrosPerMessage)} µs CPU/msg`,
        pass,
      });
    }
  }

  const kind = sinkKind();
  return {
    name: 'unthrottled',
    title: `Unthrottled overhead: ${CONNECTIONS} connections to a receiver that accepts everything (${n.toLocaleString('en-US')} messages)`,
    setup: [
      kind === 'smtp-sink'
        ? "Receiver: Postfix's smtp-sink (`smtp-sink -c -u nobody 127.0.0.1:<free port> 256`), a fresh process per run, started and stopped by PID; its `mesg=` counter confirms every message arrived."
        : 'Receiver: FALLBACK — smtp-sink is not installed: startThrottlingSmtpServer() with no limits in a separate child process (bench/lib/sink-child.ts), a fresh one per run.',
      'mailpacer runs from its built package (dist/, made by `npm run build`, which `npm run bench` runs first), as users run it; nodemailer from its published JavaScript.',
      `${rounds} round(s) of ${n.toLocaleString('en-US')} messages per contender, interleaved, after an unmeasured warm-up of ${warmup}; the table shows each contender's best round (all rounds in the "rounds" column); a full GC before each run.`,
      ...contenders.map((c) => `${c.label}: ${c.settings}.`),
      `msg/s = N / (first send → last settle); ratio = msg/s ÷ the best raw nodemailer figure (${baselineLabel}); CPU/msg = this process's user+system CPU over the same interval ÷ N (the receiver runs in another process).`,
      'raw CPU/msg ÷ this: the lowest raw nodemailer CPU per message ÷ this row\'s; the client is CPU-bound on one thread, so this ratio predicts the throughput ratio on a quiet machine and is less disturbed by other load than msg/s (information only; the goal is on msg/s).',
      'Redis CPU/msg: the redis-server process\'s CPU over the run ÷ N, from /proc (10 ms resolution; the Redis instance is shared with whatever else runs on the machine, so it is an upper bound).',
    ],
    columns: [
      { key: 'contender', label: 'contender' },
      { key: 'messages', label: 'messages' },
      { key: 'perSecond', label: 'msg/s' },
      { key: 'ratio', label: '× raw nodemailer', digits: 2 },
      { key: 'cpu', label: 'client CPU µs/msg' },
      { key: 'cpuRatio', label: 'raw CPU/msg ÷ this', digits: 2 },
      { key: 'redisCpu', label: 'Redis CPU µs/msg' },
      { key: 'rounds', label: 'msg/s per round' },
      { key: 'goal', label: 'goal' },
    ],
    rows,
    goals,
    notes: [`Goals: mailpacer in memory mode ≥ ${MEMORY_GOAL} of raw nodemailer's throughput (both the sendBatch and the send() row); on Redis ≥ ${REDIS_GOAL} (the row without a batch id; the ledger row is for information).`],
    durationMs: Date.now() - started,
    raw: { receiver: kind, rounds: Object.fromEntries(runs), baseline },
  };
}
