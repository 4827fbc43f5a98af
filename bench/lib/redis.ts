/** Redis chores of the benchmark: removing a run's keys, and finding the server's process. */
import { Redis } from 'ioredis';

import { REDIS_URL } from './redis-url.js';

export { REDIS_URL };

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
