/** Redis chores of the benchmark: removing a run's keys, and the server's CPU time. */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Deletes the keys matching `pattern` (a run's own prefix: never a broad one). */
export async function deleteKeys(pattern: string): Promise<number> {
  if (!/^[A-Za-z0-9_-]{8,}[:_]\*$/.test(pattern)) throw new Error(`refusing to delete keys by a broad pattern: ${pattern}`);
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await client.del(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    client.disconnect();
  }
}

/** The PID of the Redis server, when it runs on this machine (INFO server's `process_id`). */
export async function redisServerPid(): Promise<number | undefined> {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const info = await client.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

const TICK_MICROS = 1e6 / 100; // USER_HZ is 100 on Linux

/** User + system CPU of a local process so far, in microseconds (10 ms resolution), from /proc. */
export function processCpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS;
  } catch {
    return undefined;
  }
}
