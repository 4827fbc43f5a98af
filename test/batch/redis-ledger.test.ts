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
    expect(await a.claim('m1', '0')).toBe('claimed');
    // Run A's heartbeat lapses (a frozen process): its claims are free for others.
    const keys = ledgerKeys(keyPrefix, 'b1');
    const owners = await client.hgetall(keys.owners);
    for (const owner of Object.keys(owners)) await client.hset(keys.owners, owner, '0');
    const b = await ledger.open('b1', { resendInDoubt: false });
    expect(await b.claim('m1', '0')).toBe('claimed');
    expect(await a.sending('m1')).toBe(false);
    expect(await b.sending('m1')).toBe(true);
    await a.close();
    await b.close();
    await client.del(keys.entries, keys.owners);
  });

  // The first heartbeat comes before the ledger hash exists (PEXPIRE does nothing then) and the
  // next one a quarter lease later: a run that died in between left a hash that never expired.
  it('gives the ledger its TTL at the first claim, before the next heartbeat', async () => {
    const keyPrefix = uniquePrefix();
    const ledger = createRedisLedger({ client, keyPrefix, ttlMs: 600_000 });
    const run = await ledger.open('b3', { resendInDoubt: false });
    expect(await run.claim('m1', '0')).toBe('claimed');
    const keys = ledgerKeys(keyPrefix, 'b3');
    const ttl = await client.pttl(keys.entries);
    expect(ttl).toBeGreaterThan(500_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    await run.close();
    await client.del(keys.entries, keys.owners);
  });

  // A claim whose reply was lost (a timeout, a reconnect that made ioredis send it again) runs
  // twice: the second must find the run's own claim, not a duplicate id, or the message would be
  // counted as skipped and never sent.
  it('answers a repeated claim of the same item as claimed, and another item of the run with that id as busy', async () => {
    const keyPrefix = uniquePrefix();
    const ledger = createRedisLedger({ client, keyPrefix, ttlMs: 60_000 });
    const run = await ledger.open('b2', { resendInDoubt: false });
    expect(await run.claim('m1', '7')).toBe('claimed');
    expect(await run.claim('m1', '7')).toBe('claimed');
    expect(await run.claim('m1', '8')).toBe('busy');
    // The claim's token does not stand in the way of the run's own marks.
    expect(await run.sending('m1')).toBe(true);
    expect(await run.claim('m1', '7')).toBe('busy');
    await run.settle('m1', 'sent');
    expect(await run.claim('m1', '9')).toBe('sent');
    // Another run sees the claim as held by a live run, whatever its token.
    expect(await run.claim('m2', '1')).toBe('claimed');
    const other = await ledger.open('b2', { resendInDoubt: false });
    expect(await other.claim('m2', '1')).toBe('busy');
    await run.close();
    await other.close();
    const keys = ledgerKeys(keyPrefix, 'b2');
    await client.del(keys.entries, keys.owners);
  });
});
