/**
 * A receiver that accepts everything as fast as it can, in a process of its own so that its CPU
 * is not the client's: Postfix's `smtp-sink`, or, when it is not installed, mailpacer's own test
 * server with no limits in a child process (`sink-child.ts`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { delay } from './timing.js';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

export interface Sink {
  kind: 'smtp-sink' | 'throttling-server-child';
  /** How it was started, for the report. */
  command: string;
  host: string;
  port: number;
  pid: number;
  /** Stops the process (by its PID) and says how many messages it received, when it can tell. */
  stop(): Promise<number | null>;
}

export function sinkKind(): Sink['kind'] {
  return existsSync(SMTP_SINK) ? 'smtp-sink' : 'throttling-server-child';
}

export async function startSink(): Promise<Sink> {
  return sinkKind() === 'smtp-sink' ? startSmtpSink() : startSinkChild();
}

/**
 * `smtp-sink -c [-u nobody] 127.0.0.1:<port> 256`: `-c` prints running counters
 * (`sess=.. quit=.. mesg=..`, separated by carriage returns) that give the received count; the
 * backlog of 256 and the default limit of 256 simultaneous connections are far above the 8
 * connections of the benchmark. It runs without `-w`/`-W` delays, so it answers at once; it
 * announces PIPELINING, which nodemailer does not use for the message itself.
 */
async function startSmtpSink(): Promise<Sink> {
  const port = await freePort();
  const args = ['-c', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '256'];
  const child = spawn(SMTP_SINK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out = (out + chunk.toString()).slice(-4096);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = exitOf(child);
  await waitForPort(port, child, () => err);
  return {
    kind: 'smtp-sink',
    command: `${SMTP_SINK} ${args.join(' ')}`,
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    async stop() {
      process.kill(child.pid!, 'SIGTERM');
      await exited;
      const counts = [...out.matchAll(/mesg=(\d+)/g)];
      return counts.length > 0 ? Number(counts.at(-1)![1]) : null;
    },
  };
}

async function startSinkChild(): Promise<Sink> {
  const script = fileURLToPath(new URL('./sink-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<Record<string, unknown>>((resolve) => lines.once('line', (line) => resolve(JSON.parse(line) as Record<string, unknown>)));
  const exited = exitOf(child);
  const ready = await next();
  const port = Number(ready.port);
  return {
    kind: 'throttling-server-child',
    command: `node --import tsx ${script} (startThrottlingSmtpServer() with no limits)`,
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    async stop() {
      const answer = next();
      child.stdin!.write('stop\n');
      const { received } = await answer;
      await exited;
      return typeof received === 'number' ? received : null;
    },
  };
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A port nothing listens on right now (the sink binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let waited = 0; waited < 5_000; waited += 50) {
    if (child.exitCode !== null) throw new Error(`smtp-sink exited with ${child.exitCode}: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await delay(50);
  }
  throw new Error(`smtp-sink did not listen on 127.0.0.1:${port} within 5 s: ${stderr()}`);
}
