/**
 * Hidden capacity: the receiver takes fewer connections and fewer messages per second than the
 * sender was told, and says so with 421s. Who delivers everything, once, and how close to the
 * receiver's real capacity?
 *
 * Receiver: `startThrottlingSmtpServer({ maxConnections: 4, rate: { max: 100, perMs: 1000 } })`,
 * a fresh one per contender. Every contender is told 8 connections and 200 messages/s (or nothing).
 */
import { setMaxListeners } from 'node:events';
import Bottleneck from 'bottleneck';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import pRetry from 'p-retry';
import { createMailer } from '../lib/mailpacer.js';
import { startThrottlingSmtpServer, type ThrottlingSmtpServer } from '../../src/testing/index.js';
import { forMailpacer, forNodemailer, makeMessages, type BenchMessage } from '../lib/messages.js';
import type { Goal, Row, ScenarioOptions, ScenarioResult } from '../lib/report.js';
import { collectGarbage, delay, withinCap } from '../lib/timing.js';

const C = 4;
const R = 100;
const GOODPUT_GOAL = 0.85;
/** p-retry as a user would write it: 8 retries, exponential from 250 ms (factor 2, no jitter: p-retry's defaults). */
const P_RETRY = { retries: 8, minTimeout: 250 } as const;

interface Outcome {
  /** Promises (or batch items) that resolved / rejected, as the client saw them. */
  fulfilled: number;
  rejected: number;
  /** The most frequent client-side errors, for the notes. */
  errors: Map<string, number>;
}

interface Running {
  send(messages: BenchMessage[], signal: AbortSignal): Promise<Outcome>;
  /** Releases everything; after a time cap, also makes pending sends settle. */
  close(): Promise<void>;
  /** Figures of the contender's own, for the notes. */
  extra?(): Promise<string | undefined>;
}

interface Contender {
  key: string;
  label: string;
  settings: string;
  setup(server: ThrottlingSmtpServer): Running;
}

const contenders: Contender[] = [
  {
    key: 'nodemailer',
    label: 'nodemailer pool',
    settings: 'pool: true, maxConnections: 8, rateLimit: 200, rateDelta: 1000; Promise.allSettled(sendMail) for all messages',
    setup(server) {
      const transport = nodemailer.createTransport({ ...server.transportOptions(), pool: true, maxConnections: 8, rateLimit: 200, rateDelta: 1000 });
      return {
        send: (messages, signal) => settleAll(messages.map((m) => transport.sendMail({ ...forNodemailer(m), signal } as SendMailOptions))),
        close: async () => transport.close({ force: true }),
      };
    },
  },
  {
    key: 'nodemailer+p-retry',
    label: 'nodemailer pool + p-retry',
    settings: 'pool: true, maxConnections: 8 (no rate limit); each sendMail in pRetry({ retries: 8, minTimeout: 250 }) (factor 2, no jitter)',
    setup(server) {
      const transport = nodemailer.createTransport({ ...server.transportOptions(), pool: true, maxConnections: 8 });
      return {
        send: (messages, signal) => settleAll(messages.map((m) => pRetry(() => transport.sendMail(forNodemailer(m)), { ...P_RETRY, signal }))),
        close: async () => transport.close({ force: true }),
      };
    },
  },
  {
    key: 'bottleneck+p-retry',
    label: 'Bottleneck + nodemailer pool + p-retry',
    settings:
      'new Bottleneck({ maxConcurrent: 8, minTime: 5 }) (200/s) in front of a nodemailer pool (maxConnections: 8); each message pRetry(() => limiter.schedule(() => sendMail)), retries 8, minTimeout 250: every retry goes through the limiter again',
    setup(server) {
      const transport = nodemailer.createTransport({ ...server.transportOptions(), pool: true, maxConnections: 8 });
      const limiter = new Bottleneck({ maxConcurrent: 8, minTime: 5 });
      return {
        send: (messages, signal) =>
          settleAll(messages.map((m) => pRetry(() => limiter.schedule(() => transport.sendMail(forNodemailer(m))), { ...P_RETRY, signal }))),
        close: async () => {
          await limiter.stop({ dropWaitingJobs: true }).catch(() => {});
          transport.close({ force: true });
        },
      };
    },
  },
  {
    key: 'mailpacer',
    label: 'mailpacer',
    settings: "createMailer({ providers: { p: { transport, rate: { max: 200, per: '1s' }, maxConnections: 8 } } }) (in-process limits, default retry and adaptive settings); mailer.sendBatch(messages)",
    setup(server) {
      const mailer = createMailer({ providers: { p: { transport: server.transportOptions(), rate: { max: 200, per: '1s' }, maxConnections: 8 } } });
      const throttles: Record<string, number> = {};
      let retries = 0;
      mailer.on('throttle', (e) => {
        throttles[e.action] = (throttles[e.action] ?? 0) + 1;
      });
      mailer.on('retry', () => retries++);
      return {
        async send(messages, signal) {
          const report = await mailer.sendBatch(messages.map(forMailpacer), { signal });
          const errors = new Map<string, number>();
          for (const f of report.failures) errors.set(f.message, (errors.get(f.message) ?? 0) + 1);
          return { fulfilled: report.sent, rejected: report.failed + report.inDoubt + report.pending, errors };
        },
        close: () => mailer.close(),
        async extra() {
          const [lane] = await mailer.stats();
          const actions = Object.entries(throttles).map(([action, n]) => `${action} ×${n}`).join(', ') || 'none';
          return `mailpacer: ${retries} retries scheduled; throttle events: ${actions}; lane at the end: rate ${lane?.effectiveRate?.toFixed(1)}/s, ${lane?.effectiveConnections} connections`;
        },
      };
    },
  },
];

async function settleAll(promises: Promise<unknown>[]): Promise<Outcome> {
  const results = await Promise.allSettled(promises);
  const errors = new Map<string, number>();
  let fulfilled = 0;
  for (const result of results) {
    if (result.status === 'fulfilled') fulfilled++;
    else {
      const message = String((result.reason as Error)?.message ?? result.reason).slice(0, 120);
      errors.set(message, (errors.get(message) ?? 0) + 1);
    }
  }
  return { fulfilled, rejected: results.length - fulfilled, errors };
}

export async function runHiddenCapacity(options: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const n = options.quick ? 500 : 5_000;
  const idealMs = (n / R) * 1000;
  const capMs = 5 * idealMs;
  const rows: Row[] = [];
  const goals: Goal[] = [];
  const notes: string[] = [];
  const raw: Record<string, unknown> = {};

  for (const contender of contenders) {
    collectGarbage();
    options.log(`hidden-capacity: ${contender.label}: ${n} messages (cap ${capMs / 1000} s)`);
    const server = await startThrottlingSmtpServer({ maxConnections: C, rate: { max: R, perMs: 1000 } });
    const messages = makeMessages(`${options.runId}-hc-${contender.key}`, n);
    const running = contender.setup(server);
    const abort = new AbortController();
    // One signal for every message of the contender: thousands of listeners are expected.
    setMaxListeners(0, abort.signal);
    const startedAt = Date.now();
    const t0 = performance.now();
    const sending = running.send(messages, abort.signal);
    const capped = await withinCap(sending, capMs);
    const elapsedMs = capped.timedOut ? capMs : performance.now() - t0;
    let outcome: Outcome | undefined = capped.timedOut ? undefined : capped.value;
    if (capped.timedOut) {
      abort.abort(new Error('benchmark time cap'));
      await running.close();
      const late = await withinCap(sending, 15_000);
      outcome = late.timedOut ? undefined : late.value;
    }
    const extra = await running.extra?.().catch((error: Error) => `extra figures unavailable: ${error.message}`);
    if (!capped.timedOut) await running.close();
    // A message the server accepted after the cap still counts as delivered (not lost), not as on time.
    await delay(200);
    const counts = server.counts();
    const stats = server.stats();
    await server.close();

    const delivered = counts.unique;
    const lost = n - delivered;
    // Goodput counts what arrived within the measured time (after a cap, late arrivals are delivered, not on time).
    const onTime = new Set(server.accepted.filter((m) => m.at <= startedAt + elapsedMs).map((m) => m.messageId)).size;
    const goodput = onTime / (elapsedMs / 1000) / R;
    const pass = lost === 0 && counts.duplicates === 0 && !capped.timedOut && goodput >= GOODPUT_GOAL;
    rows.push({
      contender: contender.label,
      delivered,
      lost,
      duplicated: counts.duplicates,
      replies421: stats.replies421,
      greeting421: stats.connectionsRefused,
      unconfirmed: outcome ? n - outcome.fulfilled : null,
      timeS: elapsedMs / 1000,
      finished: capped.timedOut ? `no: capped at ${capMs / 1000} s` : 'yes',
      goodput,
      goal: pass ? 'PASS' : 'FAIL',
    });
    const actual = `delivered ${delivered}/${n}, lost ${lost}, duplicated ${counts.duplicates}, goodput ${goodput.toFixed(3)} R${capped.timedOut ? ', did not finish' : ''}`;
    goals.push({ contender: contender.label, goal: `every message delivered once, goodput ≥ ${GOODPUT_GOAL} R`, actual, pass });
    const topErrors = [...(outcome?.errors ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
    if (topErrors.length > 0) notes.push(`${contender.label}: client-side errors: ${topErrors.map(([m, k]) => `${k} × "${m}"`).join('; ')}`);
    if (extra) notes.push(extra);
    if (contender.key === 'mailpacer') notes.push(`mailpacer: accepted per consecutive second from the first: ${server.acceptedPerWindow(1000).join(', ')}`);
    raw[contender.key] = { n, elapsedMs, timedOut: capped.timedOut, counts: { unique: counts.unique, duplicates: counts.duplicates, withoutId: counts.withoutId }, stats, maxIn1s: server.maxInAnyWindow(1000), perWindow: server.acceptedPerWindow(1000), outcome: outcome && { fulfilled: outcome.fulfilled, rejected: outcome.rejected, errors: Object.fromEntries(outcome.errors) } };
    options.log(`hidden-capacity: ${contender.label}: ${actual}, ${(elapsedMs / 1000).toFixed(1)} s`);
  }

  return {
    name: 'hidden-capacity',
    title: `Hidden capacity: receiver allows ${C} connections and ${R} msg/s, senders told 8 and 200/s (${n.toLocaleString('en-US')} messages)`,
    setup: [
      `Receiver: startThrottlingSmtpServer({ maxConnections: ${C}, rate: { max: ${R}, perMs: 1000 } }) in the benchmark process, a fresh one per contender: 421 at the greeting beyond ${C} connections, 421 at the end of DATA beyond ${R} accepted in any sliding second (and the connection closes after a 421).`,
      `Ideal time N/R = ${idealMs / 1000} s; per-contender cap ${capMs / 1000} s (5×).`,
      ...contenders.map((c) => `${c.label}: ${c.settings}.`),
      'delivered = distinct Message-IDs the server accepted; lost = N − delivered; duplicated = accepted again; 421s = every 421 the server sent (greeting refusals included, also shown alone); not confirmed = messages whose promise (batch item) did not resolve on the client side, whether it rejected or never started; time = first send → last settle; goodput = (delivered within the time / time) / R.',
    ],
    columns: [
      { key: 'contender', label: 'contender' },
      { key: 'delivered', label: 'delivered' },
      { key: 'lost', label: 'lost' },
      { key: 'duplicated', label: 'duplicated' },
      { key: 'replies421', label: '421s' },
      { key: 'greeting421', label: 'of which at greeting' },
      { key: 'unconfirmed', label: 'not confirmed (client)' },
      { key: 'timeS', label: 'time s', digits: 1 },
      { key: 'finished', label: 'finished' },
      { key: 'goodput', label: 'goodput (×R)', digits: 3 },
      { key: 'goal', label: 'goal' },
    ],
    rows,
    goals: goals.filter((g) => g.contender === 'mailpacer'),
    notes: [`Goal (mailpacer): every message delivered once, goodput ≥ ${GOODPUT_GOAL} R. The goal column applies the same test to every contender.`, ...notes],
    durationMs: Date.now() - started,
    raw,
  };
}
