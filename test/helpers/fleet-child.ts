/**
 * One process of a test fleet: a mailer that shares its limits through Redis with the other
 * children, sending to the test's SMTP server. Run it as a child process:
 *
 *   node --import tsx test/helpers/fleet-child.ts '<config as JSON>'
 *
 * (or with the JSON in the `FLEET_CHILD` environment variable). It writes one JSON object per
 * line to stdout:
 *
 *   {"ready":true,"pid":123}                 mailer created and Redis answered
 *   {"sent":10,"at":1700000000000}           every `progressEvery` accepted messages
 *   {"done":true,"sent":150,"failed":0,...}  all messages settled; the process then exits 0
 *   {"error":"..."}                          something broke; the process exits 1
 *
 * With `waitForGo`, it sends nothing until it reads a line `go` on stdin, so that a test can
 * start several children and let them go at the same moment.
 *
 * A test starts one with `startFleetChild(config)` (below), which parses those lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Cluster } from 'ioredis';
import { createMailer, type Message } from '../../src/index.js';

export interface FleetChildConfig {
  /** Names the child's messages (`<name>-<i>`) and its batch. */
  name: string;
  /** A Redis URL; or `cluster`. */
  redis?: string;
  /** Redis Cluster nodes: the child connects with an ioredis `Cluster` over them. */
  cluster?: Array<{ host: string; port: number }>;
  keyPrefix: string;
  smtp: { host: string; port: number };
  rate: { max: number; per: string };
  maxConnections: number;
  /** Messages to send. */
  count: number;
  /** `'batch'`: `sendBatch` with batch id `<name>`; `'send'`: `Promise.all` of `send()`. @default 'batch' */
  mode?: 'batch' | 'send';
  /** Waits for a line `go` on stdin before sending. @default false */
  waitForGo?: boolean;
  /** A progress line every this many accepted messages. @default 10 */
  progressEvery?: number;
}

/** The Message-ID the child gives its message `i`, as the SMTP server records it. */
export function fleetMessageId(name: string, i: number): string {
  return `<${name}-${i}@fleet.test>`;
}

function out(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function readConfig(): FleetChildConfig {
  const raw = process.argv[2] ?? process.env.FLEET_CHILD;
  if (!raw) throw new Error('fleet-child: pass the config as JSON in argv[2] or FLEET_CHILD');
  return JSON.parse(raw) as FleetChildConfig;
}

/** Resolves on the first stdin line that reads `go`. */
function waitForGo(): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() !== 'go') return;
      resolve(); // first: close() below emits 'close' at once
      lines.close();
    });
    lines.once('close', () => reject(new Error('fleet-child: stdin closed before "go"')));
  });
}

async function main(): Promise<void> {
  const config = readConfig();
  const cluster = config.cluster ? new Cluster(config.cluster, { redisOptions: { maxRetriesPerRequest: 1 } }) : undefined;
  cluster?.on('error', () => {});
  const mailer = createMailer({
    redis: cluster ?? config.redis,
    keyPrefix: config.keyPrefix,
    providers: {
      fleet: {
        transport: { host: config.smtp.host, port: config.smtp.port, secure: false, ignoreTLS: true },
        rate: config.rate,
        maxConnections: config.maxConnections,
      },
    },
    retry: { minDelay: '50ms', maxDelay: '1s' },
  });
  mailer.on('error', (event) => process.stderr.write(`fleet-child ${config.name}: ${event.source}: ${event.error.message}\n`));

  // One Redis round trip before reporting ready: the connection and the scripts are warm when the test says go.
  await mailer.stats();
  out({ ready: true, pid: process.pid });
  if (config.waitForGo) await waitForGo();

  const every = config.progressEvery ?? 10;
  let sent = 0;
  mailer.on('sent', () => {
    sent++;
    if (sent % every === 0) out({ sent, at: Date.now() });
  });

  const message = (i: number): Message => ({
    id: `${config.name}-${i}`,
    messageId: fleetMessageId(config.name, i),
    from: 'fleet@example.org',
    to: `${config.name}-${i}@example.net`,
    subject: `fleet ${config.name} #${i}`,
    text: 'Hello from the fleet.',
  });
  const indexes = Array.from({ length: config.count }, (_, i) => i);
  const started = Date.now();
  let failed = 0;
  if ((config.mode ?? 'batch') === 'batch') {
    const report = await mailer.sendBatch(indexes, { id: config.name, build: message });
    failed = report.failed + report.inDoubt;
  } else {
    const results = await Promise.allSettled(indexes.map((i) => mailer.send(message(i))));
    failed = results.filter((result) => result.status === 'rejected').length;
  }
  out({ done: true, sent, failed, durationMs: Date.now() - started });
  await mailer.close();
  await cluster?.quit().catch(() => cluster.disconnect());
}

// Run as a script; imported (by a test, for `startFleetChild`), it does nothing.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      out({ error: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    },
  );
}

/** A progress line of a child, as parsed by `startFleetChild`. */
export interface FleetLine {
  ready?: boolean;
  pid?: number;
  sent?: number;
  at?: number;
  done?: boolean;
  failed?: number;
  durationMs?: number;
  error?: string;
}

export interface FleetChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** Every line so far, in order. */
  readonly lines: readonly FleetLine[];
  /** What the child wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the first line (past or future) that matches; rejects on timeout or exit first. */
  waitFor(match: (line: FleetLine) => boolean, timeoutMs: number): Promise<FleetLine>;
  /** Tells a child started with `waitForGo` to start sending. */
  go(): void;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Kills the process by its PID (SIGKILL unless told) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const SCRIPT = fileURLToPath(import.meta.url);

/** Starts `fleet-child.ts` as a separate Node process (through tsx) with this config. */
export function startFleetChild(config: FleetChildConfig): FleetChild {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: FleetLine[] = [];
  const listeners = new Set<() => void>();
  let stderr = '';
  let status: number | NodeJS.Signals | undefined;
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as FleetLine);
    } catch {
      stderr += `${text}\n`;
      return;
    }
    for (const listener of listeners) listener();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => {
      status = signal ?? code ?? 0;
      // Lines still buffered in the pipe come before 'close'.
      child.once('close', () => {
        for (const listener of listeners) listener();
      });
      resolve(status);
    });
  });
  return {
    name: config.name,
    process: child,
    pid: child.pid!,
    lines,
    stderr: () => stderr,
    exited,
    go: () => child.stdin!.write('go\n'),
    waitFor(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            const line = lines[seen]!;
            if (match(line)) return finish(() => resolve(line));
            if (line.error !== undefined) return finish(() => reject(new Error(`${config.name}: ${line.error}\n${stderr}`)));
          }
          if (status !== undefined && child.stdout!.readableEnded) {
            finish(() => reject(new Error(`${config.name} exited (${status}) before the awaited line\n${stderr}`)));
          }
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`${config.name}: no matching line within ${timeoutMs} ms; last: ${JSON.stringify(lines.at(-1))}\n${stderr}`))), timeoutMs);
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    async kill(signal = 'SIGKILL') {
      if (status !== undefined) return;
      try {
        process.kill(child.pid!, signal);
      } catch {
        // Already gone.
      }
      await exited;
    },
  };
}
