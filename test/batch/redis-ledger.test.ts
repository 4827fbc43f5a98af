import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisLedger, ledgerKeys } from '../../src/batch/redis-ledger.js';
import { defineScripts } from '../../src/limiter/scripts.js';
import { uniquePrefix } from '../helpers/redis-server.js';

const client = new Redis('redis://127.0.0.1:6379');
defineScripts(client);
afterAll(() => client.quit());

describe('Redis ledger', () => {
  it('tells a run whose claim another run took over not to send', async () => {
    const keyPrefix = uniquePrefix();
    const ledger = createRedisLedger({ client, keyPrefix, ttlMs: 60_000 });
    const a = await ledger.open('b1', { resendInDoubt: false });
    expect(await a.claim('m1')).toBe('claimed');
    // Run A's heartbeat lapses (a frozen process): its claims are free for others.
    const keys = ledgerKeys(keyPrefix, 'b1');
    const owners = await client.hgetall(keys.owners);
    for (const owner of Object.keys(owners)) await client.hset(keys.owners, owner, '0');
    const b = await ledger.open('b1', { resendInDoubt: false });
    expect(await b.claim('m1')).toBe('claimed');
    expect(await a.sending('m1')).toBe(false);
    expect(await b.sending('m1')).toBe(true);
    await a.close();
    await b.close();
    await client.del(keys.entries, keys.owners);
  });
});
