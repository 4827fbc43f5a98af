import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { isDeliveryError, type Message } from '../src/index.js';
import { addresses, prepareMessage, type PreparedMessage } from '../src/message.js';
import { useCleanup } from './helpers/setup.js';

const { mailer } = useCleanup();

const prepared = (message: Parameters<typeof prepareMessage>[0]): PreparedMessage => {
  const result = prepareMessage(message);
  if ('problem' in result) throw new Error(result.problem);
  return result;
};

describe('prepareMessage', () => {
  it('lists the recipients of to, cc and bcc once each, however they are written', () => {
    expect(prepared({ from: 'a@example.org', to: 'x@example.net' }).recipients).toEqual(['x@example.net']);
    expect(prepared({ from: 'a@example.org', to: 'X <x@example.net>, y@example.net', cc: ['y@example.net', { name: 'Z', address: 'z@example.net' }], bcc: 'x@example.net' }).recipients).toEqual([
      'x@example.net',
      'y@example.net',
      'z@example.net',
    ]);
    expect(prepared({ from: 'a@example.org', to: 'x@example.net', envelope: { to: ['e@example.net'] } }).recipients).toEqual(['e@example.net']);
  });

  it('gives each message a Message-ID at the domain of its own sender, message after message', () => {
    const ids = ['news@one.example', 'news@one.example', 'Two <news@two.example>', 'news@one.example', 'not an address'].map(
      (from) => prepared({ from, to: 'x@example.net' }).mail.messageId,
    );
    expect(ids.map((id) => id?.replace(/^<[^@]+@/, ''))).toEqual(['one.example>', 'one.example>', 'two.example>', 'one.example>', 'mailpacer.invalid>']);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('keeps a Message-ID the caller set, and leaves id and provider out of what goes to nodemailer', () => {
    const message = { id: 'm1', provider: 'ses', from: 'a@example.org', to: 'x@example.net', messageId: '<mine@example.org>' };
    const { id, provider, mail } = prepared(message);
    expect({ id, provider, messageId: mail.messageId }).toEqual({ id: 'm1', provider: 'ses', messageId: '<mine@example.org>' });
    expect(mail).not.toHaveProperty('id');
    expect(mail).not.toHaveProperty('provider');
    expect(message).toHaveProperty('id', 'm1');
  });

  it('says what is wrong with a message it cannot send', () => {
    expect(prepareMessage({ from: 'a@example.org' })).toEqual({ problem: 'message has no recipients (to, cc, bcc or envelope.to)', recipients: [] });
    expect(prepareMessage({ from: 'a@example.org', to: 'nobody' })).toEqual({ problem: 'malformed recipient address "nobody"', recipients: [] });
    expect(prepareMessage({ id: '', to: 'x@example.net' })).toEqual({ problem: 'message id must be a non-empty string', recipients: ['x@example.net'] });
    // A refusal names the well-formed recipients the message did not reach.
    expect(prepareMessage({ to: ['ok@example.net', 'nobody'], cc: 'Ok <ok@example.net>, two@example.net' })).toEqual({ problem: 'malformed recipient address "nobody"', recipients: ['ok@example.net', 'two@example.net'] });
  });

  // What nodemailer's parser made of each (see the comments): it rewrites rather than refuses.
  it.each([
    ['user@example.net\r\nBcc: evil@example.com', 'user@example.net\r\nBcc: evil@example.com'], // sent to evil@example.com only
    ['a\u0000b@example.net', 'a\u0000b@example.net'], // ab@example.net
    ['a@example.net\u0007', 'a@example.net\u0007'],
    ['a@example.net\n', 'a@example.net\n'],
    ['john doe@example.net', 'john doe@example.net'], // doe@example.net
    ['a@example.net b@example.net', 'a@example.net b@example.net'], // a@ only, b@ as its display name
    ['a@example.net\tb@example.net', 'a@example.net\tb@example.net'],
    ['a@exa mple.net', 'a@exa mple.net'], // a@exa
    ['a@example.net (Ann) b@example.net', 'a@example.net (Ann) b@example.net'], // a@ only
    ['Ann <a@example.net>, john doe@example.net', 'john doe@example.net'], // a@ and doe@
    ['A <a@example.net> B <b@example.net>', 'A <a@example.net> B <b@example.net>'], // a@ only
    ['Ann <a@example.net> b@example.net', 'Ann <a@example.net> b@example.net'], // a@ only
    ['Bob <bob@example.net', 'Bob <bob@example.net'],
    ['a@example.net:b@example.net', 'a@example.net:b@example.net'], // a group named a@example.net: b@ only
    ['user @ example.net', 'user @ example.net'],
    ['x@example.net, not-an-address', 'not-an-address'], // x@ only
  ])('refuses %j, which nodemailer would not send as written, naming it', (to, named) => {
    expect(prepareMessage({ from: 'a@example.org', to })).toMatchObject({ problem: `malformed recipient address ${JSON.stringify(named)}` });
  });

  it.each([
    ['a@b@c.com'], // nodemailer sends to "a@b"@c.com: a 501 from most servers, after a send slot
    ['foo@bar@example.net'],
    ['@example.net'],
    ['b@'],
    ['a@example..net'],
    ['a@.example.net'],
    ['a@example.net.'],
    ['a@-example.net'],
    ['a@example-.net'],
    ['a@exam_ple.net'],
    [`a@${'x'.repeat(64)}.net`],
    ['""@example.net'],
  ])('refuses %j, which is no address (one @, a local part, a domain of letters, digits and inner hyphens)', (to) => {
    expect(prepareMessage({ from: 'a@example.org', to })).toMatchObject({ problem: `malformed recipient address ${JSON.stringify(to)}` });
  });

  it('refuses a malformed address wherever it is: in cc or bcc, in a list, in an address object, or no address at all', () => {
    const problem = (message: Message) => (prepareMessage(message) as { problem: string }).problem;
    expect(problem({ to: 'ok@example.net', bcc: 'john doe@example.net' })).toBe('malformed recipient address "john doe@example.net"');
    expect(problem({ to: ['ok@example.net', ['a@b@c.com']] })).toBe('malformed recipient address "a@b@c.com"');
    expect(problem({ to: { name: 'John', address: 'john doe@example.net' } })).toBe('malformed recipient address "john doe@example.net"');
    expect(problem({ to: [{ name: 'John' } as never, 'ok@example.net'] })).toBe('malformed recipient address {"name":"John"}');
    expect(problem({ to: 12345 as never })).toBe('malformed recipient address 12345');
    expect(problem({ to: 'x@example.net', envelope: { to: 'e@example.net\r\nx' } })).toBe(`malformed recipient address ${JSON.stringify('e@example.net\r\nx')}`);
  });

  const sentTo = async (to: Message['to']) => (await nodemailer.createTransport({ streamTransport: true }).sendMail({ from: 'a@example.org', to, text: 'x' })).envelope.to;

  it.each<[Message['to'], string[]]>([
    ['x@example.net', ['x@example.net']],
    ['Ann Lee <ann@example.net>', ['ann@example.net']],
    ['"Doe, John" <j@example.net>', ['j@example.net']],
    ['Doe, John <j@example.net>, x@example.net', ['j@example.net', 'x@example.net']], // nodemailer reads the comma as part of the name
    ['a@example.net, b@example.org; c@example.com', ['a@example.net', 'b@example.org', 'c@example.com']],
    [['a@example.net', ['b@example.net', [{ name: 'C', address: 'c@example.net' }]]], ['a@example.net', 'b@example.net', 'c@example.net']],
    [{ name: 'Ann', address: 'ann@example.net' }, ['ann@example.net']],
    ['Undisclosed: a@example.net, b@example.org;', ['a@example.net', 'b@example.org']],
    ['Undisclosed:;, x@example.net', ['x@example.net']],
    ['a@example.net (Ann)', ['a@example.net']],
    ['Ann (work) <a@example.net> (2nd)', ['a@example.net']],
    ['josé@bücher.de', ['josé@bücher.de']],
    ['José <josé@bücher.de>', ['josé@bücher.de']],
    ['ann+news@example.net', ['ann+news@example.net']],
    ["o'brien@example.ie", ["o'brien@example.ie"]],
    ['"john doe"@example.net', ['"john doe"@example.net']], // valid (RFC 5321), and sent with its quotes
    ['"john"@example.net', ['john@example.net']], // nodemailer sends it unquoted
    ['<a@example.net>', ['a@example.net']],
    ['a@[192.0.2.1]', ['a@[192.0.2.1]']],
    ['a@localhost', ['a@localhost']],
  ])('accepts %j and lists what nodemailer sends to', async (to, listed) => {
    expect(prepared({ from: 'a@example.org', to }).recipients).toEqual(listed);
    expect(await sentTo(to)).toEqual(listed);
  });

  it('lists the recipients of the envelope when there is one, to, cc and bcc, as nodemailer sends to them and not to the headers', () => {
    expect(prepared({ from: 'a@example.org', to: 'x@example.net', envelope: { to: 'e@example.net', cc: ['c@example.net'], bcc: 'Bee <b@example.net>' } as never }).recipients).toEqual([
      'e@example.net',
      'c@example.net',
      'b@example.net',
    ]);
    expect(prepareMessage({ from: 'a@example.org', to: 'x@example.net', envelope: { from: 'bounce@example.org' } })).toEqual({ problem: 'message has no recipients (to, cc, bcc or envelope.to)', recipients: [] });
  });

  it('copies the address lists, so that changing them in place after preparing changes neither the recipients nor what nodemailer gets', () => {
    const to = ['a@example.net', ['b@example.net']];
    const cc = { name: 'C', address: 'c@example.net' };
    const envelopeTo = ['e@example.net'];
    const envelope = { from: 'bounce@example.org', to: envelopeTo };
    const { mail, recipients } = prepared({ from: 'a@example.org', to: to as string[], cc });
    const withEnvelope = prepared({ from: 'a@example.org', to: 'x@example.net', envelope: envelope as never });
    to[0] = 'z@example.net';
    (to[1] as string[]).push('zz@example.net');
    cc.address = 'zc@example.net';
    envelopeTo[0] = 'ze@example.net';
    envelope.from = 'z@example.org';
    expect(recipients).toEqual(['a@example.net', 'b@example.net', 'c@example.net']);
    expect({ to: mail.to, cc: mail.cc }).toEqual({ to: ['a@example.net', ['b@example.net']], cc: { name: 'C', address: 'c@example.net' } });
    expect(withEnvelope.mail.envelope).toEqual({ from: 'bounce@example.org', to: ['e@example.net'] });
  });

  it('takes one bare address as it is, without copying a string `to`', () => {
    const message = { from: 'a@example.org', to: 'x@example.net' };
    const { mail, recipients } = prepared(message);
    expect(recipients).toEqual(['x@example.net']);
    expect(mail.to).toBe(message.to);
  });
});

describe('createMailer().send with malformed recipients and reused lists', () => {
  /** A transport that takes its time and records the envelope of every message it sends. */
  const slowTransport = () => {
    const envelopes: string[][] = [];
    const transport = {
      name: 'slow',
      version: '1',
      send(mail: { message: { getEnvelope(): { to: string[] } } }, callback: (error: Error | null, info: unknown) => void) {
        const envelope = mail.message.getEnvelope();
        envelopes.push(envelope.to);
        setTimeout(() => callback(null, { messageId: '<x@example.org>', envelope, accepted: envelope.to, rejected: [], response: '250 ok' }), 5);
      },
    };
    return { transport, envelopes };
  };

  it('fails a message with a malformed recipient alone, permanent, naming the address, and sends none of it', async () => {
    const { transport, envelopes } = slowTransport();
    const m = mailer({ providers: { custom: { transport } } });
    const results = await Promise.allSettled(
      ['user@example.net\r\nBcc: evil@example.com', 'john doe@example.net', 'a@b@c.com', 'ok@example.net'].map((to) => m.send({ from: 'a@example.org', to, text: 'x' })),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
    const errors = results.slice(0, 3).map((r) => (r as PromiseRejectedResult).reason as unknown);
    expect(errors.map((e) => isDeliveryError(e) && [e.decision, e.attempts])).toEqual([
      ['permanent', 0],
      ['permanent', 0],
      ['permanent', 0],
    ]);
    expect((errors[1] as Error).message).toContain('malformed recipient address "john doe@example.net"');
    expect(envelopes).toEqual([['ok@example.net']]);
  });

  it('sends to the list as it was when send() was called, though the caller changes the same array while the messages wait', async () => {
    const { transport, envelopes } = slowTransport();
    const m = mailer({ providers: { custom: { transport, maxConnections: 1 } } });
    const sent: string[][] = [];
    m.on('sent', (e) => sent.push([...e.recipients]));
    const to = ['b0@example.net'];
    const reused = { from: 'a@example.org', to, text: 'x' };
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 4; i++) {
      to[0] = `b${i}@example.net`;
      sends.push(m.send(reused));
    }
    to[0] = 'nobody@example.net';
    await Promise.all(sends);
    const expected = [0, 1, 2, 3].map((i) => [`b${i}@example.net`]);
    expect(envelopes).toEqual(expected);
    expect(sent).toEqual(expected);
  });
});

describe('addresses', () => {
  it('reads a bare address, a display name, a list and address objects', () => {
    expect(addresses('x@example.net')).toEqual(['x@example.net']);
    expect(addresses('"Doe, J" <j@example.net>')).toEqual(['j@example.net']);
    expect(addresses(['a@example.net', ['b@example.net', { name: 'C', address: 'c@example.net' }], 'a@example.net'])).toEqual(['a@example.net', 'b@example.net', 'c@example.net']);
    expect(addresses(undefined)).toEqual([]);
  });
});
