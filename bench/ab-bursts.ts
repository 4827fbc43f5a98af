/**
 * Paired A/B in one process, for differences smaller than this machine's drift (its speed moves by
 * tens of per cent within minutes, so runs a minute apart cannot show a 5 % change):
 *
 *   node --expose-gc --import tsx bench/ab-bursts.ts [rounds=30] [burst=2000] <contender>...
 *
 * contender:
 * - `raw`: nodemailer's pool, 8 connections, 64 messages in flight (the unthrottled scenario's baseline);
 * - `raw-8x1`: eight nodemailer pools of one connection, 64 in flight, 8 on each (mailpacer's shape);
 * - `factory`: mailpacer's transport layer alone, eight of its connections, 64 in flight (from the sources);
 *   `factory+<k>`: the same, each send behind k async functions that only await the one below;
 * - `lane`: mailpacer's lane alone (its queue, workers, pacing checks and transport), 64 in flight,
 *   and `src-send`: `send()` with 64 in flight, both from the sources through tsx (compare them
 *   with each other, not with a build: tsx wraps every named function);
 * - the absolute path of a mailpacer build's `dist/index.js` inside this checkout: sendBatch,
 *   8 connections, concurrency 64, memory mode; with `?send` appended, `send()` with 64 in flight;
 *   with `?all`, `send()` for every message of the burst at once (the unthrottled scenario's row);
 *   with `?array`, sendBatch of an array of messages all built before the first send.
 *
 * Every contender keeps its sender open against one smtp-sink for the whole run; after a warm-up,
 * the run sends bursts of `burst` messages, each contender in turn (the order rotates every round),
 * and measures each burst's wall time and this process's CPU time. Each round compares every
 * contender with the first one named, measured seconds apart; it prints the median and quartiles
 * of those ratios over the rounds, for throughput and CPU per message. With AB_WINDOWS=<file> it
 * writes the bursts' spans for `profile-split.ts`. Two builds compared: `npm run build`, copy
 * `dist` to `.tmp/distA`, change, build again, and name both.
 *
 * A mailpacer contender closes connections idle for a second, so it may reconnect after the
 * other contenders' bursts: at most 8 connections per burst, against 20–25 per 2,000 messages
 * from maxMessagesPerConnection.
 */
import { forMailpacer, forNodemailer, makeMessages, type BenchMessage } from './lib/messages.js';
import { startSink } from './lib/sink.js';
import { collectGarbage, cpuMicros } from './lib/timing.js';
import { batch, BATCH_CONCURRENCY, CONNECTIONS, contenders, eightSinglePools, mailer, mapLimit } from './scenarios/unthrottled-contenders.js';

const args = process.argv.slice(2);
const numeric = args.filter((a) => /^\d+$/.test(a)).map(Number);
const [rounds = 30, burst = 2000] = numeric;
const names = args.filter((a) => !/^\d+$/.test(a));
if (names.length < 1) throw new Error('name at least one contender: raw, raw-8x1, factory, factory+<k>, lane, src-send, or the absolute path of a build’s dist/index.js (with ?send for send(), ?all for send() all at once, ?array for sendBatch of a prebuilt array)');

const sink = await startSink();

interface Sender {
  name: string;
  send(messages: BenchMessage[]): Promise<unknown>;
  close(): unknown;
}

async function open(name: string, index: number): Promise<Sender> {
  if (name === 'raw') {
    // The unthrottled scenario's baseline, as it is.
    const raw = await contenders.find((c) => c.key === 'nodemailer-64')!.setup(sink, '');
    return { name, send: raw.send, close: raw.close };
  }
  if (name === 'raw-8x1') return { name, ...eightSinglePools(sink) };
  const layered = /^factory(?:\+(\d+))?$/.exec(name);
  if (layered) {
    // mailpacer's transport layer alone (one pooled connection per slot, its stream plugin and reply watch), from the sources;
    // `factory+<k>`: each send behind k async functions that only await the one below (what a promise hop costs here).
    const { createTransportFactory } = await import('../src/lanes/transport.js');
    const factory = createTransportFactory({ host: sink.host, port: sink.port, secure: false, ignoreTLS: true }, 100);
    const connections = Array.from({ length: CONNECTIONS }, () => factory.open());
    let send = (message: BenchMessage, w: number): Promise<unknown> =>
      new Promise((resolve, reject) => connections[w % CONNECTIONS]!.send(forNodemailer(message), undefined, (error, info) => (error ? reject(error as Error) : resolve(info))));
    for (let k = Number(layered[1] ?? 0); k > 0; k--) {
      const below = send;
      send = async (message, w) => await below(message, w);
    }
    return { name, send: (messages) => mapLimit(messages, BATCH_CONCURRENCY, send), close: () => Promise.all(connections.map((c) => c.close())) };
  }
  if (name === 'lane') {
    // mailpacer's lane alone (queue, worker, pacing checks, transport), from the sources through tsx.
    const { parseOptions } = await import('../src/config/parse.js');
    const { createLanes } = await import('../src/lanes/lanes.js');
    const { createMemoryLimiter } = await import('../src/limiter/memory.js');
    const { createEmitter } = await import('../src/emitter.js');
    const config = parseOptions({ providers: { sink: { transport: { host: sink.host, port: sink.port, secure: false, ignoreTLS: true }, maxConnections: CONNECTIONS } } });
    const lanes = createLanes(config, createMemoryLimiter(), createEmitter(config.hooks));
    const lane = lanes.all.get('sink')!;
    return { name, send: (messages) => mapLimit(messages, BATCH_CONCURRENCY, (one) => lane.attempt(forNodemailer(one))), close: () => lanes.close() };
  }
  // A build by path (sendBatch; send() with ?send, all at once with ?all; sendBatch of an array with ?array), or `src-send`: send() from the sources through tsx.
  const suffix = /\?(send|all|array)$/;
  const form = name === 'src-send' ? 'send' : suffix.exec(name)?.[1];
  const entry = name === 'src-send' ? '../src/index.js' : name.replace(suffix, '');
  const { createMailer } = (await import(entry)) as typeof import('../src/index.js');
  const m = await mailer(sink, undefined, createMailer);
  const label = name === 'src-send' ? name : `${name}#${index}`;
  if (form === 'send') return { name: label, send: (messages) => mapLimit(messages, BATCH_CONCURRENCY, (one) => m.send(forMailpacer(one))), close: () => m.close() };
  if (form === 'all') return { name: label, send: (messages) => Promise.all(messages.map((one) => m.send(forMailpacer(one)))), close: () => m.close() };
  // The unthrottled scenario's sendBatch until commit e0d2a54: every message built before the first send.
  if (form === 'array') return { name: label, send: (messages) => m.sendBatch(messages.map(forMailpacer), { concurrency: BATCH_CONCURRENCY }), close: () => m.close() };
  return { name: label, send: (messages) => batch(m, messages), close: () => m.close() };
}

const senders: Sender[] = [];
for (const [i, name] of names.entries()) senders.push(await open(name, i));

let tag = 0;
const burstOf = () => makeMessages(`abb-${Date.now()}-${tag++}`, burst);

// Warm-up: every sender, a few bursts each, unmeasured.
for (let w = 0; w < 3; w++) for (const sender of senders) await sender.send(burstOf());

/** Each measured burst's span on the monotonic clock (µs), which V8's CPU profiles use too: with `--cpu-prof`, samples can be told apart by sender. */
const windows: Array<{ sender: number; from: number; to: number }> = [];
const rate: number[][] = senders.map(() => []);
const cpu: number[][] = senders.map(() => []);
for (let r = 0; r < rounds; r++) {
  const perSecond: number[] = [];
  const cpuPer: number[] = [];
  for (let k = 0; k < senders.length; k++) {
    const i = (r + k) % senders.length;
    const messages = burstOf();
    collectGarbage();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const h0 = process.hrtime.bigint();
    await senders[i]!.send(messages);
    const ms = performance.now() - t0;
    windows.push({ sender: i, from: Number(h0 / 1000n), to: Number(process.hrtime.bigint() / 1000n) });
    perSecond[i] = burst / (ms / 1000);
    cpuPer[i] = cpuMicros(c0) / burst;
  }
  for (let i = 0; i < senders.length; i++) {
    rate[i]!.push(perSecond[i]! / perSecond[0]!);
    cpu[i]!.push(cpuPer[i]! / cpuPer[0]!);
  }
  process.stderr.write(`round ${r + 1}: ${senders.map((s, i) => `${perSecond[i]!.toFixed(0)}/s ${cpuPer[i]!.toFixed(0)}µs`).join('  ')}\n`);
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.ceil(at)]! - sorted[lo]!) * (at - lo);
};
const fmt = (values: number[]) => `${quantile(values, 0.5).toFixed(3)} (${quantile(values, 0.25).toFixed(3)}–${quantile(values, 0.75).toFixed(3)})`;
for (let i = 1; i < senders.length; i++) {
  console.log(JSON.stringify({ contender: senders[i]!.name, versus: senders[0]!.name, rounds, burst, throughputRatio: fmt(rate[i]!), cpuRatio: fmt(cpu[i]!) }));
}
if (process.env.AB_WINDOWS) (await import('node:fs')).writeFileSync(process.env.AB_WINDOWS, JSON.stringify({ burst, senders: senders.map((s) => s.name), windows }));
for (const sender of senders) await sender.close();
const received = await sink.stop();
const expected = (3 + rounds) * senders.length * burst;
if (received !== null && received !== expected) throw new Error(`the receiver counted ${received} of ${expected}`);
process.exit(0);
