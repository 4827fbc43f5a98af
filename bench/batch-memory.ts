// Memory and throughput of sendBatch over a long async source, through a transport that answers at
// once (so that mailpacer itself, not the network, is what is measured).
//
// Run: npx tsx bench/batch-memory.ts [--items 100000,1000000] [--redis redis://127.0.0.1:6379] [--modes memory,memory+id,redis+id] [--sync-transport] [--report-only]
//
// Modes:
//   memory     no Redis, no batch id: duplicate ids are caught by an in-memory Set of the batch's ids
//   memory+id  no Redis, a batch id: the in-memory ledger (one entry per message id, kept ledgerTtl)
//   redis+id   Redis (limiter and ledger), a batch id: the ledger is a Redis hash
// Each run is a fresh child process (`--child`), so that its peak RSS is its own. Writes
// bench/results/batch-memory.json and bench/results/batch-memory.md.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type { Transport } from 'nodemailer';
import { ledgerKeys } from '../src/batch/redis-ledger.js';
import { createMailer } from '../src/index.js';

type Mode = 'memory' | 'memory+id' | 'redis+id';
const MODES: readonly Mode[] = ['memory', 'memory+id', 'redis+id'];
const CONCURRENCY = 200; // sendBatch's default
const MAX_CONNECTIONS = 50;
const SAMPLE_MS = 100;
const MB = 1024 * 1024;

interface RunConfig {
  mode: Mode;
  items: number;
  redis: string | undefined;
  /** The transport answers inside send() instead of on the next event-loop turn. */
  syncTransport: boolean;
}

interface RunResult extends RunConfig {
  sent: number;
  failed: number;
  skipped: number;
  durationMs: number;
  perSecond: number;
  /** After a warm-up batch and a GC, before the measured batch. */
  baselineRssMB: number;
  baselineHeapMB: number;
  peakRssMB: number;
  peakHeapUsedMB: number;
  /** Heap after the batch and a GC, with the mailer still open (what the mailer keeps). */
  retainedHeapMB: number;
  /** Heap after `mailer.close()` and a GC. */
  closedHeapMB: number;
  /** CPU time of the process over wall time of the batch: well below 1 means it waited (for Redis, or for a busy machine). */
  cpuPerWall: number;
  samples: number;
  /** Redis only: fields and bytes of the batch's ledger hash after the run. */
  ledgerEntries?: number;
  ledgerMB?: number;
  loadBefore: number[];
  loadAfter: number[];
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Child: one measured run.

/**
 * A nodemailer transport that accepts every message at once. By default it answers on the next
 * turn of the event loop, as any transport doing I/O does. With `sync` it answers inside `send()`:
 * then a batch never yields to the event loop (no timer fires until it ends, the 100 ms sampler
 * included, so "peak" is only the value at the end).
 */
function instantTransport(sync: boolean): Transport {
  let n = 0;
  return {
    name: 'instant',
    version: '1.0.0',
    send(mail, callback) {
      const envelope = mail.message.getEnvelope();
      const info = { messageId: mail.message.messageId(), envelope, accepted: envelope.to, rejected: [], pending: [], response: `250 2.0.0 OK ${++n}` };
      if (sync) callback(null, info);
      else setImmediate(() => callback(null, info));
    },
  };
}

const build = (i: number) => ({ id: `u${i}`, from: 'news@example.org', to: `user${i}@example.net`, subject: 'Bench', text: 'Hello' });

async function* cursor(from: number, count: number) {
  for (let i = from; i < from + count; i++) yield i;
}

/**
 * A full GC, twice, a moment apart: AbortSignal.timeout() timers (one per message, for its retry
 * deadline) are cleared by a FinalizationRegistry after their signal is collected, in a later task.
 */
async function gc(): Promise<void> {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) {
    collect();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function child(config: RunConfig): Promise<RunResult> {
  const keyPrefix = `mp-bench-${randomBytes(4).toString('hex')}`;
  const batchId = config.mode === 'memory' ? undefined : `bench-${config.items}`;
  const mailer = createMailer({
    ...(config.mode === 'redis+id' && { redis: config.redis, keyPrefix }),
    providers: { bench: { transport: instantTransport(config.syncTransport), maxConnections: MAX_CONNECTIONS } },
  });
  // Warm-up: code paths compiled, connections (slots) opened; no id, so nothing stays behind.
  await mailer.sendBatch(cursor(-10_000, 10_000), { build });
  await gc();
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakHeap = baseline.heapUsed;
  let samples = 0;
  const sample = () => {
    const { rss, heapUsed } = process.memoryUsage();
    peakRss = Math.max(peakRss, rss);
    peakHeap = Math.max(peakHeap, heapUsed);
    samples++;
  };
  const sampler = setInterval(sample, SAMPLE_MS);
  const loadBefore = os.loadavg();
  const cpu = process.cpuUsage();
  const report = await mailer.sendBatch(cursor(0, config.items), { ...(batchId && { id: batchId }), build, concurrency: CONCURRENCY });
  const cpuUsed = process.cpuUsage(cpu);
  clearInterval(sampler);
  sample();
  const loadAfter = os.loadavg();
  await gc();
  const retained = process.memoryUsage().heapUsed;
  await mailer.close();
  await gc();
  const closed = process.memoryUsage().heapUsed;

  let ledger: { ledgerEntries: number; ledgerMB: number } | undefined;
  if (config.mode === 'redis+id') {
    const client = new Redis(config.redis!);
    const key = ledgerKeys(keyPrefix, batchId!).entries;
    ledger = { ledgerEntries: await client.hlen(key), ledgerMB: Number((await client.memory('USAGE', key, 'SAMPLES', '0')) ?? 0) / MB };
    for (let cursorAt = '0'; ; ) {
      const [next, keys] = await client.scan(cursorAt, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1_000);
      if (keys.length > 0) await client.unlink(...keys);
      if ((cursorAt = next) === '0') break;
    }
    await client.quit();
  }

  return {
    ...config,
    sent: report.sent,
    failed: report.failed,
    skipped: report.skipped,
    durationMs: report.durationMs,
    perSecond: (report.sent * 1_000) / report.durationMs,
    baselineRssMB: baseline.rss / MB,
    baselineHeapMB: baseline.heapUsed / MB,
    peakRssMB: peakRss / MB,
    peakHeapUsedMB: peakHeap / MB,
    retainedHeapMB: retained / MB,
    closedHeapMB: closed / MB,
    cpuPerWall: (cpuUsed.user + cpuUsed.system) / 1_000 / report.durationMs,
    samples,
    ...ledger,
    loadBefore,
    loadAfter,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent: one child per run, then the table and the result files.

function runChild(config: RunConfig): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(config)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.once('error', reject);
    proc.once('exit', (code, signal) => {
      const line = out.trim().split('\n').at(-1);
      if (code !== 0 || !line) return reject(new Error(`run ${JSON.stringify(config)} exited with ${signal ?? code}:\n${out}`));
      resolve(JSON.parse(line) as RunResult);
    });
  });
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');

function table(results: RunResult[]): string {
  const head = ['mode', 'items', 'sent', 'msg/s', 'samples', 'baseline RSS MB', 'peak RSS MB', 'peak heap MB', 'heap kept after batch MB', 'heap after close MB', 'Redis ledger MB', 'CPU/wall', 'load 1m before→after'];
  const rows = results.map((r) => [
    r.mode,
    fmt(r.items),
    fmt(r.sent),
    fmt(r.perSecond),
    fmt(r.samples),
    fmt(r.baselineRssMB, 1),
    fmt(r.peakRssMB, 1),
    fmt(r.peakHeapUsedMB, 1),
    fmt(r.retainedHeapMB, 1),
    fmt(r.closedHeapMB, 1),
    r.ledgerMB === undefined ? '–' : `${fmt(r.ledgerMB, 1)} (${fmt(r.ledgerEntries ?? 0)} fields)`,
    r.cpuPerWall.toFixed(2),
    `${r.loadBefore[0]!.toFixed(2)}→${r.loadAfter[0]!.toFixed(2)}`,
  ]);
  return [head, head.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}

/** Whether the heap kept after a redis+id batch grows with the batch (more than 20 bytes per message). */
function leaks(results: RunResult[]): boolean {
  const runs = results.filter((r) => r.mode === 'redis+id').sort((a, b) => a.items - b.items);
  if (runs.length < 2) return false;
  const [small, large] = [runs[0]!, runs.at(-1)!];
  return ((large.retainedHeapMB - small.retainedHeapMB) * MB) / (large.items - small.items) > 20;
}

/** Per-message growth between the smallest and the largest run of each mode. */
function growth(results: RunResult[]): string[] {
  const notes: string[] = [];
  for (const mode of MODES) {
    const runs = results.filter((r) => r.mode === mode).sort((a, b) => a.items - b.items);
    if (runs.length < 2) continue;
    const [small, large] = [runs[0]!, runs.at(-1)!];
    const items = large.items - small.items;
    const perItem = (a: number, b: number) => ((b - a) * MB) / items;
    notes.push(
      `- **${mode}**: from ${fmt(small.items)} to ${fmt(large.items)} items, peak RSS ${fmt(small.peakRssMB, 1)} → ${fmt(large.peakRssMB, 1)} MB ` +
        `(${fmt(perItem(small.peakRssMB, large.peakRssMB))} bytes per extra message), peak heap ${fmt(small.peakHeapUsedMB, 1)} → ${fmt(large.peakHeapUsedMB, 1)} MB ` +
        `(${fmt(perItem(small.peakHeapUsedMB, large.peakHeapUsedMB))} B/msg), heap kept after the batch ${fmt(small.retainedHeapMB, 1)} → ${fmt(large.retainedHeapMB, 1)} MB ` +
        `(${fmt(perItem(small.retainedHeapMB, large.retainedHeapMB))} B/msg).`,
    );
    const kept = perItem(small.retainedHeapMB, large.retainedHeapMB);
    if (mode !== 'memory+id' && kept > 20) {
      notes.push(
        `  **The heap kept after a ${mode} batch grows with the batch (${fmt(kept)} B per message): state that should be dropped is retained (a leak).**` +
          (mode === 'redis+id' ? ' Still there after `mailer.close()`: see "heap after close".' : ''),
      );
    }
  }
  return notes;
}

async function parent(): Promise<void> {
  const { values } = parseArgs({
    options: {
      items: { type: 'string' },
      redis: { type: 'string' },
      modes: { type: 'string' },
      'sync-transport': { type: 'boolean', default: false },
      /** Rewrites the Markdown from bench/results/batch-memory.json without running anything. */
      'report-only': { type: 'boolean', default: false },
    },
  });
  if (values['report-only']) return writeMarkdown(JSON.parse(readFileSync(`${ROOT}/bench/results/batch-memory.json`, 'utf8')) as Saved);
  const sizes = (values.items ?? '100000,1000000').split(',').map((s) => Number(s.replace(/_/g, '')));
  if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`--items: expected whole numbers, got ${values.items}`);
  const redis = values.redis ?? process.env.REDIS_URL;
  const modes = (values.modes?.split(',') as Mode[] | undefined) ?? MODES.filter((mode) => mode !== 'redis+id' || redis);
  for (const mode of modes) if (!MODES.includes(mode)) throw new Error(`--modes: unknown mode ${mode} (${MODES.join(', ')})`);
  if (modes.includes('redis+id') && !redis) throw new Error('redis+id needs --redis URL (or REDIS_URL)');

  const machine = {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    /** Files under src/ that differ from the commit when the benchmark ran. */
    srcChanges: git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length,
  };
  const command = `npx tsx bench/batch-memory.ts ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`${command}\n${machine.nproc} cores (${machine.cpu}), ${machine.node}, load ${load(os.loadavg())}\n`);

  const results: RunResult[] = [];
  for (const items of sizes) {
    for (const mode of modes) {
      process.stdout.write(`${mode} × ${fmt(items)} … `);
      const result = await runChild({ mode, items, redis: mode === 'redis+id' ? redis : undefined, syncTransport: values['sync-transport'] });
      results.push(result);
      console.log(`${fmt(result.perSecond)} msg/s, peak RSS ${fmt(result.peakRssMB, 1)} MB, peak heap ${fmt(result.peakHeapUsedMB, 1)} MB, CPU/wall ${result.cpuPerWall.toFixed(2)}, load ${load(result.loadAfter)}`);
    }
  }
  const saved: Saved = { command, machine, concurrency: CONCURRENCY, maxConnections: MAX_CONNECTIONS, sampleMs: SAMPLE_MS, results };
  mkdirSync(`${ROOT}/bench/results`, { recursive: true });
  writeFileSync(`${ROOT}/bench/results/batch-memory.json`, `${JSON.stringify(saved, null, 2)}\n`);
  writeMarkdown(saved);
}

type Machine = { nproc: number; cpu: string; memoryGB: number; node: string; platform: string; date: string; commit: string; srcChanges: number };
interface Saved {
  command: string;
  machine: Machine;
  concurrency: number;
  maxConnections: number;
  sampleMs: number;
  results: RunResult[];
}

/** Writes bench/results/batch-memory.md (and prints the table) from saved results. */
function writeMarkdown({ command, machine, results, concurrency, maxConnections, sampleMs }: Saved): void {
  const notes = growth(results);
  console.log(`\n${table(results)}\n\n${notes.join('\n')}`);
  writeFileSync(
    `${ROOT}/bench/results/batch-memory.md`,
    `# sendBatch: memory and throughput over a long async source

Generated by \`${command}\` on ${machine.date}, at commit ${machine.commit}${machine.srcChanges > 0 ? ` with ${machine.srcChanges} uncommitted file(s) under src/` : ''}.

Machine: ${machine.nproc} cores (${machine.cpu}), ${machine.memoryGB} GB, ${machine.platform}, Node ${machine.node}. Shared with
other work: the 1-minute load before and after each run is in the table; CPU/wall is the process's
CPU time over the batch's wall time.

Setup: an async generator of N items; \`build\` makes a message with an \`id\` per item; a nodemailer
custom transport that answers 250 ${results[0]?.syncTransport ? 'inside send() (`--sync-transport`)' : 'on the next event-loop turn (setImmediate)'}; one provider, no rate, maxConnections ${maxConnections},
concurrency ${concurrency} (the default). Each run is a fresh process (\`node --expose-gc\`) that first
sends a 10,000-message warm-up batch without an id; RSS and heapUsed are sampled every ${sampleMs} ms.
"Heap kept after batch" is heapUsed after the batch and a forced GC, with the mailer still open.

${table(results)}

Growth with the batch size:

${notes.join('\n')}

What each mode keeps per message (from the code), which is what the growth above is made of:

- **memory**: \`runBatch\` keeps a \`Set\` of every message id of the batch, to catch duplicate ids
  without a ledger. It grows with the batch (tens of bytes per id, plus the Set's doubling) and is
  dropped when the batch ends, so "heap kept after batch" stays flat while the peak does not.
- **memory+id**: the in-memory ledger keeps one \`Map\` entry per message id (state and owner packed
  in one number) for \`ledgerTtl\` (7 days by default) after the batch's last run, or until
  \`mailer.close()\`: it grows with the batch and stays after it ("heap kept after batch").
- **redis+id**: the ledger is a Redis hash ("Redis ledger MB", kept for \`ledgerTtl\`); the process
  itself keeps nothing per message, so growth of "heap kept after batch" here would be a leak.
- In every mode the peaks include garbage not yet collected: V8 lets the heap grow with the
  allocation rate, so peak heap and RSS rise by more than the live state does.
${leaks(results) ? `
Why redis+id keeps memory here: with a Redis limiter, each attempt combines the message's signal
with a deadline twice (\`untilDeadline()\` in \`src/lanes/lane.ts\`, for the limiter wait and for
the ledger write), through \`AbortSignal.any([job.signal, AbortSignal.timeout(…)])\`. Without a
caller's signal, \`job.signal\` is the mailer's own close signal, which lives as long as the mailer;
Node 20 keeps a WeakRef to every signal combined from it in that source signal and does not prune
them (about 57 bytes per \`AbortSignal.any()\` call, measured on ${machine.node}). Two per message
is the ~100 bytes per message kept above, for the mailer's whole life.
` : ''}`,
  );
}

const childArg = process.argv.indexOf('--child');
if (childArg !== -1) {
  const result = await child(JSON.parse(process.argv[childArg + 1]!) as RunConfig);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await parent();
}
