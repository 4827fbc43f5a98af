import { describe, expect, it } from 'vitest';
import { useCleanup } from '../helpers/setup.js';
import { uniquePrefix } from '../helpers/redis-server.js';

const { plainServer, mailer } = useCleanup();

const build = (to: string) => ({ id: to, messageId: `<${to}>`, from: 'news@example.org', to, subject: 'Hi', text: 'Hello' });

// A message left in doubt stays in doubt until a run sends it: a run with resendInDoubt that is
// stopped before it does gives it back as in doubt, not as never sent (a later run without
// resendInDoubt would send it again).
describe.each([
  ['in memory', {}],
  ['on Redis', { redis: 'redis://127.0.0.1:6379' }],
])('a message in doubt, %s', (_, store) => {
  it('stays in doubt when a resendInDoubt run is stopped before sending it', async () => {
    let dropped = false;
    const srv = await plainServer({}, async (to) => {
      if (to.includes('m@example.net') && !dropped) return (dropped = true), 'drop';
      return 'accept';
    });
    // One message per 3 s: the second run's 'm' waits for its slot when the signal stops it.
    const m = mailer({ ...store, keyPrefix: uniquePrefix(), providers: { main: { transport: { host: '127.0.0.1', port: srv.port, secure: false, ignoreTLS: true }, maxConnections: 1, rate: { max: 1, per: '3s' } } }, retry: { minDelay: '10ms', maxDelay: '20ms' } });
    const first = await m.sendBatch(['m@example.net'], { id: 'doubt', build });
    expect(first).toMatchObject({ inDoubt: 1, inDoubtIds: ['m@example.net'] });

    const controller = new AbortController();
    m.on('sent', (e) => void (e.messageId === 'x@example.net' && controller.abort()));
    const second = await m.sendBatch(['x@example.net', 'm@example.net'], { id: 'doubt', build, resendInDoubt: true, signal: controller.signal });
    expect(second).toMatchObject({ sent: 1, pending: 1, aborted: true });

    const third = await m.sendBatch(['m@example.net'], { id: 'doubt', build });
    expect(third).toMatchObject({ sent: 0, inDoubt: 1, inDoubtIds: ['m@example.net'] });
    expect(srv.transactions).toEqual([['m@example.net'], ['x@example.net']]);
  }, 30_000);
});

describe('a message whose attempt ended in doubt, retried with resendInDoubt', () => {
  it('is in doubt, not aborted, when the signal stops its retry', async () => {
    const srv = await plainServer({}, async () => 'drop');
    const m = mailer({ providers: { main: { transport: { host: '127.0.0.1', port: srv.port, secure: false, ignoreTLS: true }, maxConnections: 1 } }, retry: { minDelay: '5s', maxDelay: '5s', resendInDoubt: true } });
    const controller = new AbortController();
    m.on('retry', () => controller.abort());
    const error = await m.send(build('r@example.net'), { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'DeliveryError', inDoubt: true });
    expect((error as Error).message).toContain('while retrying an attempt that may have arrived');
    expect(srv.transactions).toEqual([['r@example.net']]);
  }, 30_000);
});
