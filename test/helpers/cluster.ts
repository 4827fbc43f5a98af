import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, launchRedisServer as launch, rawCommand } from './redis-server.js';

/** A throwaway Redis Cluster of masters on loopback, for tests. */
export interface RedisClusterServer {
  /** The masters, as ioredis `Cluster` takes its startup nodes. */
  readonly nodes: ReadonlyArray<{ host: '127.0.0.1'; port: number }>;
  /** PIDs of the `redis-server` processes. */
  readonly pids: readonly number[];
  /** Stops every node by PID (SIGTERM, then SIGKILL after 5 s) and removes the data directory. */
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  /** Masters; slots are spread evenly over them by `redis-cli --cluster create`. @default 3 */
  masters?: number;
}

/**
 * Starts `masters` `redis-server --cluster-enabled yes` processes on free ports (each with a free
 * cluster bus port, since port + 10000 may be taken), joins them with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and waits until every node
 * reports `cluster_state:ok`.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisClusterServer> {
  const masters = options.masters ?? 3;
  if (masters < 3) throw new Error('redis-cli --cluster create needs at least 3 masters');
  const dir = mkdtempSync(join(tmpdir(), 'mailpacer-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];

  const stop = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < masters; i++) {
      // Two distinct free ports: freePort() may hand out the same one twice if nothing binds in between.
      const port = await freePortNotIn(ports);
      ports.push(port);
      const busPort = await freePortNotIn(ports);
      ports.push(busPort);
      const args = [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-port', String(busPort),
        '--cluster-announce-ip', '127.0.0.1',
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--dbfilename', `dump-${port}.rdb`,
      ];
      children.push(await launch(args, port));
    }
    const nodes = ports.filter((_, i) => i % 2 === 0);
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed (${created.status}):\n${created.stdout}\n${created.stderr}`);
    for (const port of nodes) await waitForClusterOk(port);
    return {
      nodes: nodes.map((port) => ({ host: '127.0.0.1' as const, port })),
      pids: children.map((child) => child.pid!),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function freePortNotIn(taken: readonly number[]): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (!taken.includes(port)) return port;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

async function waitForClusterOk(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if ((await rawCommand(port, ['CLUSTER', 'INFO']).catch(() => '')).includes('cluster_state:ok')) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis cluster node on port ${port} did not reach cluster_state:ok`);
}
