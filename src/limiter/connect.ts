import { Redis } from 'ioredis';
import type { RedisLike } from './redis.js';

/**
 * The Redis client of a mailer: one it creates from a URL (and quits on close), or the caller's
 * ioredis `Redis` or `Cluster` (left open). A client created here fails a command after one
 * reconnection attempt instead of queueing it for a minute, so that the outage policy
 * (`onRedisDown`) takes over quickly; it reconnects in the background for as long as it takes.
 */
export function connectRedis(redis: unknown): { client: RedisLike; close(): Promise<void> } {
  if (typeof redis !== 'string') return { client: redis as RedisLike, close: async () => {} };
  const client = new Redis(redis, {
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  // Errors surface through the calls that fail; an unhandled 'error' event would crash the process.
  client.on('error', () => {});
  return {
    client: client as unknown as RedisLike,
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}
