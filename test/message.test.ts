import { describe, expect, it } from 'vitest';
import { addresses, prepareMessage, type PreparedMessage } from '../src/message.js';

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
    expect(prepareMessage({ from: 'a@example.org' })).toEqual({ problem: 'message has no recipients (to, cc, bcc or envelope.to)' });
    expect(prepareMessage({ from: 'a@example.org', to: 'nobody' })).toEqual({ problem: 'malformed recipient address "nobody"' });
    expect(prepareMessage({ id: '', to: 'x@example.net' })).toEqual({ problem: 'message id must be a non-empty string' });
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
