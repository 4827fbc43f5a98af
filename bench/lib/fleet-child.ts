/**
 * One process of a benchmark fleet: it shares a rate with its siblings through Redis and sends
 * its share of the messages to the scenario's SMTP server. Run as
 *
 *   node --import tsx bench/lib/fleet-child.ts '<FleetChildConfig as JSON>'
 *
 * Modes: `mailpacer` (createMailer with `redis` and a shared `keyPrefix`, then `sendBatch`), and
 * `bottleneck` (a clustered Bottleneck limiter with a shared `id` on the ioredis datastore in
 * front of a nodemailer pool). It writes one JSON object per line on stdout:
 *
 *   {"ready":true,"pid":123}              connected to Redis; waiting for "go" on stdin
 *   {"done":true,"sent":500,"failed":0,"durationMs":2500,"errors":{...}}
 *   {"error":"..."}                       something broke; exit code 1
 */
import { createInterface } from 'node:readline';
import Bottleneck from 'bottleneck';
import nodemailer from 'nodemailer';
import { createMailer } from './mailpacer.js';
import { forMailpacer, forNodemailer, makeMessages } from './messages.js';
import { watchLoopDelay, type LoopDelay } from './timing.js';

export interface FleetChildConfig {
  mode: 'mailpacer' | 'bottleneck';
  /** Tags the child's Message-IDs. */
  name: string;
  redisUrl: string;
  /** mailpacer's keyPrefix, or Bottleneck's cluster id: the same for every child of a fleet. */
  shared: string;
  smtp: { host: string; port: number };
  count: number;
  /** The fleet's rate, messages per second. */
  ratePerSecond: number;
  /** The fleet's connection (mailpacer) or concurrency (Bottleneck) cap. */
  maxConcurrent: number;
  /** Bottleneck mode: connections of this child's nodemailer pool. */
  poolConnections: number;
}

export interface FleetLine {
  ready?: boolean;
  pid?: number;
  done?: boolean;
  sent?: number;
  failed?: number;
  durationMs?: number;
  errors?: Record<string, number>;
  /** How late the child's event loop ran while it sent (information only). */
  loopDelay?: LoopDelay;
  error?: string;
}

const out = (line: FleetLine) => process.stdout.write(`${JSON.stringify(line)}\n`);

function waitForGo(): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() !== 'go') return;
      resolve();
      lines.close();
    });
    lines.once('close', () => reject(new Error('stdin closed before "go"')));
  });
}

function tally(results: PromiseSettledResult<unknown>[]): { sent: number; failed: number; errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  let sent = 0;
  for (const result of results) {
    if (result.status === 'fulfilled') sent++;
    else {
      const message = String((result.reason as Error)?.message ?? result.reason).slice(0, 120);
      errors[message] = (errors[message] ?? 0) + 1;
    }
  }
  return { sent, failed: results.length - sent, errors };
}

async function runMailpacer(config: FleetChildConfig): Promise<void> {
  const mailer = createMailer({
    redis: config.redisUrl,
    keyPrefix: config.shared,
    providers: {
      fleet: {
        transport: { host: config.smtp.host, port: config.smtp.port, secure: false, ignoreTLS: true },
        rate: { max: config.ratePerSecond, per: '1s' },
        maxConnections: config.maxConcurrent,
      },
    },
  });
  mailer.on('error', (event) => process.stderr.write(`fleet-child ${config.name}: ${event.source}: ${event.error.message}\n`));
  const messages = makeMessages(config.name, config.count).map(forMailpacer);
  // One Redis round trip first: connected and scripts loaded before the parent says go.
  await mailer.stats();
  out({ ready: true, pid: process.pid });
  await waitForGo();
  const started = Date.now();
  const stopWatching = watchLoopDelay();
  const report = await mailer.sendBatch(messages);
  const loopDelay = stopWatching();
  const errors: Record<string, number> = {};
  for (const failure of report.failures) errors[failure.message] = (errors[failure.message] ?? 0) + 1;
  out({ done: true, sent: report.sent, failed: report.failed + report.inDoubt + report.pending, durationMs: Date.now() - started, errors, loopDelay });
  await mailer.close();
}

async function runBottleneck(config: FleetChildConfig): Promise<void> {
  const url = new URL(config.redisUrl);
  const limiter = new Bottleneck({
    id: config.shared,
    datastore: 'ioredis',
    clientOptions: { host: url.hostname, port: Number(url.port || 6379) },
    // Clustered: both are kept in Redis and hold for every limiter with this id.
    minTime: 1000 / config.ratePerSecond,
    maxConcurrent: config.maxConcurrent,
  });
  limiter.on('error', (error: Error) => process.stderr.write(`fleet-child ${config.name}: bottleneck: ${error.message}\n`));
  const transport = nodemailer.createTransport({ host: config.smtp.host, port: config.smtp.port, secure: false, ignoreTLS: true, pool: true, maxConnections: config.poolConnections });
  const messages = makeMessages(config.name, config.count).map(forNodemailer);
  await limiter.ready();
  out({ ready: true, pid: process.pid });
  await waitForGo();
  const started = Date.now();
  const stopWatching = watchLoopDelay();
  const results = await Promise.allSettled(messages.map((mail) => limiter.schedule(() => transport.sendMail(mail))));
  const loopDelay = stopWatching();
  out({ done: true, ...tally(results), durationMs: Date.now() - started, loopDelay });
  transport.close();
  await limiter.disconnect();
}

const raw = process.argv[2];
try {
  if (!raw) throw new Error('fleet-child: pass the config as JSON in argv[2]');
  const config = JSON.parse(raw) as FleetChildConfig;
  await (config.mode === 'mailpacer' ? runMailpacer(config) : runBottleneck(config));
  process.exit(0);
} catch (error) {
  out({ error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
