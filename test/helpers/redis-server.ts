import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway `redis-server` for tests that must restart or reconfigure Redis. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** PID of the current process (it changes on restart). */
  readonly pid: number;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
  /**
   * Stops and starts the server on the same port; with `keepData: false` it comes back empty.
   * `downMs` keeps it down that long in between (an outage).
   */
  restart(options: { keepData: boolean; downMs?: number }): Promise<void>;
}

export interface StartRedisServerOptions {
  /** @default a free port */
  port?: number;
  /** Starts a one-node Redis Cluster that serves every slot. @default false */
  cluster?: boolean;
}

/** A key prefix no other test uses. */
export function uniquePrefix(): string {
  return `mp-test-${randomBytes(6).toString('hex')}`;
}

/** Whether a Redis answers PING at `host:port` (the shared test Redis by default). */
export async function redisAvailable(port = 6379, host = '127.0.0.1'): Promise<boolean> {
  try {
    return (await rawCommand(port, ['PING'], host)) === 'PONG';
  } catch {
    return false;
  }
}

/** Whether the `redis-server` binary can be started. */
export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'mailpacer-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', 'dump.rdb'];
  if (options.cluster) {
    // The bus port defaults to port + 10000, which may be taken or beyond 65535. A lone node
    // knows no IP of its own, and ioredis skips a slot owner with an empty one.
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(await freePort()), '--cluster-announce-ip', '127.0.0.1');
  }

  let child = await launchRedisServer(args, port);
  if (options.cluster) await assignAllSlots(port);

  const stopChild = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid!;
    },
    async stop() {
      await stopChild();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart({ keepData, downMs = 0 }) {
      // `--save ''` turns snapshots off; SAVE still writes one on demand.
      if (keepData) await rawCommand(port, ['SAVE']);
      await stopChild();
      if (!keepData) rmSync(join(dir, 'dump.rdb'), { force: true });
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      child = await launchRedisServer(args, port);
      if (options.cluster) await waitForClusterOk(port);
    },
  };
}

/** Starts `redis-server` with `args` and resolves once it answers PING on `port`. */
export async function launchRedisServer(args: string[], port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Kept for the error message while starting; the streams are drained afterwards so Redis never blocks on its log.
  let output = '';
  let capture = true;
  const collect = (chunk: Buffer): void => {
    if (capture) output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}:\n${output}`);
    if (await redisAvailable(port)) {
      capture = false;
      return child;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s:\n${output}`);
}

async function assignAllSlots(port: number): Promise<void> {
  await rawCommand(port, ['CLUSTER', 'ADDSLOTSRANGE', '0', '16383']);
  await waitForClusterOk(port);
}

async function waitForClusterOk(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await rawCommand(port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis cluster on port ${port} did not reach cluster_state:ok`);
}

/**
 * Sends one command over a fresh connection and returns its reply as text: enough for PING, SAVE
 * and CLUSTER INFO, without a client that would reconnect or queue.
 */
export function rawCommand(port: number, args: readonly string[], host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let buffer = '';
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(2_000, () => fail(new Error(`redis on port ${port}: no reply to ${args[0]}`)));
    socket.once('error', fail);
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const reply = parseReply(buffer);
      if (reply === undefined) return;
      socket.end();
      if (reply instanceof Error) reject(reply);
      else resolve(reply);
    });
    socket.connect(port, host, () => {
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
    });
  });
}

/** Parses a simple string, error, integer or bulk string reply; undefined while incomplete. */
function parseReply(buffer: string): string | Error | undefined {
  const end = buffer.indexOf('\r\n');
  if (end === -1) return undefined;
  const head = buffer.slice(1, end);
  switch (buffer[0]) {
    case '+':
    case ':':
      return head;
    case '-':
      return new Error(head);
    case '$': {
      const length = Number(head);
      if (length < 0) return '';
      const body = Buffer.from(buffer.slice(end + 2), 'utf8');
      return body.length >= length ? body.subarray(0, length).toString('utf8') : undefined;
    }
    default:
      return new Error(`unexpected reply: ${buffer.slice(0, 40)}`);
  }
}
