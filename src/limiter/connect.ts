import { createRequire } from 'node:module';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { ConfigError } from '../errors.js';
import type { RedisLike } from './redis.js';

/**
 * ioredis, loaded when a mailer first needs it (a `redis` URL), not with mailpacer: a mailer
 * without Redis has no use for it. (ioredis 6, loaded at all, made nodemailer's sends in the same
 * process cost 4–30 % more CPU; ioredis 5, the one mailpacer depends on, costs nothing measurable:
 * docs/benchmarks.md.)
 */
export function loadRedis(): new (url: string, options: RedisOptions) => RedisClient {
  const ioredis = createRequire(import.meta.url)('ioredis') as { Redis?: unknown; default?: unknown };
  return (ioredis.Redis ?? ioredis.default ?? ioredis) as new (url: string, options: RedisOptions) => RedisClient;
}

/**
 * The Redis client of a mailer: one it creates from a URL (and quits on close), or the caller's
 * ioredis `Redis` or `Cluster` (left open). A client created here fails a command after one
 * reconnection attempt instead of queueing it for a minute, so that the outage policy
 * (`onRedisDown`) takes over quickly; it reconnects in the background for as long as it takes.
 */
export function connectRedis(redis: unknown): { client: RedisLike; close(): Promise<void> } {
  if (typeof redis !== 'string') return { client: redis as RedisLike, close: async () => {} };
  const Redis = loadRedis();
  let client: RedisClient;
  try {
    client = new Redis(redis, {
      maxRetriesPerRequest: 1,
      connectTimeout: 5_000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
  } catch {
    // The schema refuses the URLs ioredis cannot parse; should one get through, ioredis's own error
    // (a TypeError whose `input` is the URL, password included) stays here.
    throw new ConfigError([{ path: 'redis', message: 'expected a redis:// or rediss:// URL that ioredis can parse' }]);
  }
  // Errors surface through the calls that fail; an unhandled 'error' event would crash the process.
  client.on('error', () => {});
  return {
    client: client as unknown as RedisLike,
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}
