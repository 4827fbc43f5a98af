/**
 * Fleet fidelity: four processes share one rate through Redis. Does the receiver see the
 * configured rate, and never a second above it?
 *
 * Receiver: `startThrottlingSmtpServer()` with no limits in this process (it only records when
 * each message arrived), a fresh one per contender. Senders: 4 child processes
 * (`bench/lib/fleet-child.ts`) that start together on a "go".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startThrottlingSmtpServer } from '../../src/testing/index.js';
import type { FleetChildConfig, FleetLine } from '../lib/fleet-child.js';
import { deleteKeys, REDIS_URL } from '../lib/redis.js';
import type { Goal, Row, ScenarioOptions, ScenarioResult } from '../lib/report.js';
import { delay, watchLoopDelay, type LoopDelay } from '../lib/timing.js';

const CHILDREN = 4;
const RATE = 200;
const MAX_CONCURRENT = 8;
const DEVIATION_GOAL = 0.02;
const CHILD_SCRIPT = fileURLToPath(new URL('../lib/fleet-child.ts', import.meta.url));

interface Contender {
  mode: FleetChildConfig['mode'];
  label: string;
  settings: string;
  /** Pool connections per child (Bottleneck mode). */
  poolConnections: number;
  /** The Redis keys of a shared name, for the clean-up. */
  keys(shared: string): string;
}

const contenders: Contender[] = [
  {
    mode: 'mailpacer',
    label: 'mailpacer (Redis)',
    settings: `createMailer({ redis, keyPrefix: <shared>, providers: { fleet: { transport, rate: { max: ${RATE}, per: '1s' }, maxConnections: ${MAX_CONCURRENT} } } }) in each child (the rate and the ${MAX_CONCURRENT} connections are fleet-wide); sendBatch of the child's share`,
    poolConnections: 0,
    keys: (shared) => `${shared}:*`,
  },
  {
    mode: 'bottleneck',
    label: 'Bottleneck clustered (ioredis) + nodemailer',
    settings: `new Bottleneck({ id: <shared>, datastore: 'ioredis', clientOptions: { host, port }, minTime: ${1000 / RATE}, maxConcurrent: ${MAX_CONCURRENT} }) in each child (both settings are fleet-wide in Redis; no reservoir) in front of a nodemailer pool of ${MAX_CONCURRENT} connections per child, so that the pool never queues what the limiter released; Promise.allSettled(limiter.schedule(sendMail)) for the child's share`,
    poolConnections: MAX_CONCURRENT,
    keys: (shared) => `b_${shared}_*`,
  },
];

interface Child {
  process: ChildProcess;
  lines: FleetLine[];
  stderr: () => string;
  waitFor(match: (line: FleetLine) => boolean, timeoutMs: number): Promise<FleetLine>;
}

function startChild(config: FleetChildConfig): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD_SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: FleetLine[] = [];
  const listeners = new Set<() => void>();
  let stderr = '';
  let exited = false;
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as FleetLine);
    } catch {
      stderr += `${text}\n`;
    }
    for (const listener of listeners) listener();
  });
  child.once('close', () => {
    exited = true;
    for (const listener of listeners) listener();
  });
  return {
    process: child,
    lines,
    stderr: () => stderr,
    waitFor(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(match);
          const failed = lines.find((line) => line.error !== undefined);
          if (found || failed || exited) {
            listeners.delete(check);
            clearTimeout(timer);
            if (found) resolve(found);
            else reject(new Error(`fleet child ${config.name}: ${failed?.error ?? `exited (code ${child.exitCode})`}; stderr: ${stderr.slice(-1000)}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`fleet child ${config.name}: no answer within ${timeoutMs / 1000} s; stderr: ${stderr.slice(-1000)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.process.once('close', () => resolve()));
  child.process.kill('SIGKILL');
  await closed;
}

export async function runFleet(options: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const total = options.quick ? 600 : 2_000;
  const perChild = Math.ceil(total / CHILDREN);
  const n = perChild * CHILDREN;
  const idealMs = (n / RATE) * 1000;
  const capMs = 5 * idealMs + 10_000;
  const rows: Row[] = [];
  const goals: Goal[] = [];
  const notes: string[] = [];
  const raw: Record<string, unknown> = {};

  for (const contender of contenders) {
    const shared = `${options.runId}-fleet-${contender.mode}`;
    options.log(`fleet: ${contender.label}: ${CHILDREN} processes × ${perChild} messages at ${RATE}/s shared`);
    const server = await startThrottlingSmtpServer();
    const children = Array.from({ length: CHILDREN }, (_, i) =>
      startChild({
        mode: contender.mode,
        name: `${shared}-c${i}`,
        redisUrl: REDIS_URL,
        shared,
        smtp: { host: server.host, port: server.port },
        count: perChild,
        ratePerSecond: RATE,
        maxConcurrent: MAX_CONCURRENT,
        poolConnections: contender.poolConnections,
      }),
    );
    let done: FleetLine[] = [];
    let elapsedMs = 0;
    let failure: string | undefined;
    let receiverDelay: LoopDelay | undefined;
    try {
      await Promise.all(children.map((child) => child.waitFor((line) => line.ready === true, 60_000)));
      const t0 = performance.now();
      const stopWatching = watchLoopDelay();
      for (const child of children) child.process.stdin!.write('go\n');
      done = await Promise.all(children.map((child) => child.waitFor((line) => line.done === true, capMs)));
      elapsedMs = performance.now() - t0;
      receiverDelay = stopWatching();
    } catch (error) {
      failure = (error as Error).message;
      options.log(`fleet: ${contender.label}: ${failure}`);
    } finally {
      await Promise.all(children.map((child) => child.waitFor(() => false, 5_000).catch(() => undefined)));
      await Promise.all(children.map(stopChild));
      await delay(100);
    }
    const counts = server.counts();
    const times = server.accepted.map((m) => m.at).sort((a, b) => a - b);
    // For a closer look at where a crowded second came from: accept time (ms from the first) and connection.
    const connections = new Map<string, number>();
    const record = server.accepted.map((m) => [m.at - (times[0] ?? 0), connections.get(m.connectionId) ?? connections.set(m.connectionId, connections.size).size - 1]);
    const perWindow = server.acceptedPerWindow(1000);
    const worst = server.maxInAnyWindow(1000);
    const worst100 = server.maxInAnyWindow(100);
    await server.close();
    await deleteKeys(contender.keys(shared)).catch(() => 0);

    const first = times[0];
    const last = times.at(-1);
    const achieved = times.length > 1 && first !== undefined && last !== undefined && last > first ? ((times.length - 1) / (last - first)) * 1000 : null;
    const deviation = achieved === null ? null : (achieved - RATE) / RATE;
    const worstLimit = RATE * (1 + DEVIATION_GOAL);
    const complete = counts.unique === n && counts.duplicates === 0;
    const pass = !failure && complete && deviation !== null && Math.abs(deviation) <= DEVIATION_GOAL && worst <= worstLimit;
    rows.push({
      contender: contender.label,
      delivered: counts.unique,
      duplicated: counts.duplicates,
      timeS: failure ? null : elapsedMs / 1000,
      achieved,
      deviation: deviation === null ? null : deviation * 100,
      worst,
      worst100,
      goal: pass ? 'PASS' : 'FAIL',
    });
    const actual = `${achieved === null ? 'no rate' : `${achieved.toFixed(1)}/s`} (${deviation === null ? '–' : `${(deviation * 100).toFixed(2)} %`}), worst second ${worst}, delivered ${counts.unique}/${n}, duplicated ${counts.duplicates}${failure ? `; FAILED: ${failure}` : ''}`;
    goals.push({ contender: contender.label, goal: `achieved rate within ${DEVIATION_GOAL * 100} % of ${RATE}/s, no second above ${worstLimit}`, actual, pass });
    const childFailures = done.reduce((sum, line) => sum + (line.failed ?? 0), 0);
    if (childFailures > 0) notes.push(`${contender.label}: ${childFailures} messages failed in the children: ${JSON.stringify(Object.assign({}, ...done.map((line) => line.errors ?? {})))}`);
    notes.push(`${contender.label}: accepted per consecutive second from the first: ${perWindow.join(', ')}`);
    const childDelays = done.flatMap((line) => (line.loopDelay ? [line.loopDelay] : []));
    if (receiverDelay) {
      // Information only: an accept time is taken by the receiver's event loop, a send by a child's; a late loop bunches them.
      const ms = (delays: LoopDelay[], key: keyof LoopDelay) => Math.max(...delays.map((d) => d[key])).toFixed(1);
      notes.push(`${contender.label}: how late the event loop ran while sending, p99 / max: receiver ${ms([receiverDelay], 'p99Ms')} / ${ms([receiverDelay], 'maxMs')} ms; senders (the worst child) ${childDelays.length > 0 ? `${ms(childDelays, 'p99Ms')} / ${ms(childDelays, 'maxMs')}` : '–'} ms`);
    }
    raw[contender.mode] = { n, elapsedMs, failure, achieved, deviation, worst, worst100, perWindow, counts: { unique: counts.unique, duplicates: counts.duplicates }, connections: connections.size, children: done, receiverDelay, record };
    options.log(`fleet: ${contender.label}: ${actual}`);
  }

  return {
    name: 'fleet',
    title: `Fleet fidelity: ${CHILDREN} processes sharing ${RATE}/s through Redis (${n.toLocaleString('en-US')} messages)`,
    setup: [
      'Receiver: startThrottlingSmtpServer() with no limits, in the benchmark process, a fresh one per contender; it records when it accepted each message.',
      `${CHILDREN} child processes (node --import tsx bench/lib/fleet-child.ts), ${perChild} messages each, started together on a "go" once all are connected; ideal time ${idealMs / 1000} s; cap ${capMs / 1000} s.`,
      ...contenders.map((c) => `${c.label}: ${c.settings}.`),
      'achieved = (n − 1) / (last − first accept time), from the server record; deviation = achieved / target − 1; worst second = the most accepted in any sliding 1 s window (maxInAnyWindow(1000)); worst 100 ms window: the same over 100 ms, a measure of burstiness (information only).',
    ],
    columns: [
      { key: 'contender', label: 'contender' },
      { key: 'delivered', label: 'delivered' },
      { key: 'duplicated', label: 'duplicated' },
      { key: 'timeS', label: 'time s', digits: 1 },
      { key: 'achieved', label: 'achieved msg/s', digits: 1 },
      { key: 'deviation', label: 'deviation %', digits: 2 },
      { key: 'worst', label: 'worst 1 s window' },
      { key: 'worst100', label: `worst 100 ms window (ideal ${RATE / 10})` },
      { key: 'goal', label: 'goal' },
    ],
    rows,
    goals: goals.filter((g) => g.contender.startsWith('mailpacer')),
    notes: [`Goal (mailpacer): achieved rate within ${DEVIATION_GOAL * 100} % of ${RATE}/s, no one-second window above ${RATE * (1 + DEVIATION_GOAL)}; every message delivered once. The goal column applies the same test to Bottleneck.`, ...notes],
    durationMs: Date.now() - started,
    raw,
  };
}
