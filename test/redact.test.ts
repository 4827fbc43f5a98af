import { createServer, type AddressInfo, type Server } from 'node:net';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailer, isDeliveryError, type Mailer, type MailerEvents } from '../src/index.js';
import { collectSecrets, createRedactor } from '../src/redact.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const PASS = 'S3cr3t-Pa55word!';

/** AUTH PLAIN's initial response (RFC 4616): `authzid NUL authcid NUL passwd`, in base64. */
const authPlain = (user: string, pass: string, authzid = '') => b64(`${authzid}\0${user}\0${pass}`);
/** XOAUTH2's initial response, as nodemailer sends it. */
const xoauth2 = (user: string, token: string) => b64(`user=${user}\x01auth=Bearer ${token}\x01\x01`);

describe('createRedactor', () => {
  it('hides a password inside AUTH PLAIN at each of the three byte alignments', () => {
    const redact = createRedactor([PASS]);
    // `\0user\0` is 2 bytes longer than the user name: user names of 18, 19 and 20 bytes put the
    // password at offsets 20, 21 and 22, one of each alignment (mod 3).
    const users = ['a@example.org12345', 'ab@example.org12345', 'abc@example.org12345'];
    expect(new Set(users.map((u) => (u.length + 2) % 3))).toEqual(new Set([0, 1, 2]));
    for (const user of users) {
      const token = authPlain(user, PASS);
      expect(redact(`535 5.7.8 bad AUTH PLAIN ${token}`)).toBe('535 5.7.8 bad AUTH PLAIN [redacted]');
      expect(redact(`535 5.7.8 bad AUTH PLAIN ${authPlain(user, PASS, user)}`)).toBe('535 5.7.8 bad AUTH PLAIN [redacted]');
    }
    // base64(PASS) on its own does not appear inside all of them: looking for it is not enough.
    expect(users.some((user) => !authPlain(user, PASS).includes(b64(PASS)))).toBe(true);
  });

  it('hides a short password inside AUTH PLAIN, at every alignment, with no user name known', () => {
    const redact = createRedactor(['p4s']);
    for (const user of ['u', 'us', 'usr', 'user']) {
      expect(redact(`535 AUTH PLAIN ${authPlain(user, 'p4s')} refused`)).toBe('535 AUTH PLAIN [redacted] refused');
    }
  });

  it('hides a base64 text glued to the words before it, whatever their length', () => {
    const redact = createRedactor([PASS]);
    for (const glue of ['x', 'xy', 'xyz', 'wxyz', 'auth-']) {
      const out = redact(`535 ${glue}${authPlain('mailuser@example.org', PASS)} bad`);
      expect(out).toBe('535 [redacted] bad');
    }
  });

  it('hides AUTH LOGIN (user and password each in base64), the plain and the URL-encoded password', () => {
    const redact = createRedactor(['mailuser@example.org', PASS]);
    expect(redact(`535 5.7.8 AUTH LOGIN ${b64('mailuser@example.org')} ${b64(PASS)}`)).toBe('535 5.7.8 AUTH LOGIN [redacted] [redacted]');
    expect(redact(`535 bad password ${PASS} for smtp://mailuser:${encodeURIComponent(PASS)}@host`)).not.toMatch(/S3cr3t|Pa55/);
  });

  it('hides an XOAUTH2 access token that collectSecrets found', () => {
    const token = 'ya29.a0AfH6SMBx-token_value';
    const redact = createRedactor(collectSecrets({ host: 'h', auth: { type: 'OAuth2', user: 'me@example.org', accessToken: token } }));
    for (const user of ['a@example.org', 'ab@example.org', 'abc@example.org']) {
      expect(redact(`535 AUTH XOAUTH2 ${xoauth2(user, token)}`)).toBe('535 AUTH XOAUTH2 [redacted]');
    }
    expect(redact(`invalid token ${token}`)).toBe('invalid token [redacted]');
  });

  it('hides random passwords in AUTH PLAIN and AUTH LOGIN whatever their length and characters', () => {
    const alphabet = 'abcXYZ019+/=!@#$%&*()-_ \u00e9\u00fc\u4e2d';
    const random = (length: number) => Array.from({ length }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
    for (let i = 0; i < 300; i++) {
      const pass = random(3 + (i % 40));
      const user = random(1 + (i % 23));
      const redact = createRedactor([pass]);
      const out = redact(`535 ${authPlain(user, pass)} ${b64(pass)} ${authPlain(user, pass, user)}`)!;
      expect(out).toBe('535 [redacted] [redacted] [redacted]');
    }
  });

  it('leaves text and base64 without a secret as they are', () => {
    const redact = createRedactor([PASS, 'mailuser@example.org']);
    const reply = `535 5.7.8 Authentication credentials invalid ${b64('someone-else\0other\0password')} x-y_z/4==`;
    expect(redact(reply)).toBe(reply);
  });

  it('collects the user name and password of a URL, as written and decoded, from a string or a `url` option', () => {
    const url = `smtp://mailuser%40example.org:${encodeURIComponent(PASS)}@host:587`;
    for (const transport of [url, { url }]) {
      expect(collectSecrets(transport)).toEqual(expect.arrayContaining([PASS, encodeURIComponent(PASS), 'mailuser@example.org']));
    }
  });

  it('collects DKIM private keys, in `dkim` and in each of `dkim.keys`, and the credentials of a `proxy` URL', () => {
    const pem = (n: number) => `-----BEGIN PRIVATE KEY-----\nMIIEv${n}QIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----`;
    const secrets = collectSecrets({
      host: 'h',
      proxy: `http://proxyuser:${encodeURIComponent(PASS)}@proxy.example.org:3128`,
      dkim: { domainName: 'example.org', keySelector: 's1', privateKey: pem(1), keys: [{ domainName: 'example.net', keySelector: 's2', privateKey: pem(2) }] },
    });
    expect(secrets).toEqual(expect.arrayContaining([pem(1), pem(2), PASS, encodeURIComponent(PASS), 'proxyuser']));
    const redact = createRedactor(secrets);
    expect(redact(`proxy http://proxyuser:${encodeURIComponent(PASS)}@proxy.example.org refused; key ${pem(2)}`)).toBe('proxy http://[redacted]:[redacted]@proxy.example.org refused; key [redacted]');
  });
});

// Everything a server that echoes the AUTH command back in its 535 could put a credential into.

type Echo = { port: number; server: Server };
const servers: Server[] = [];
const mailers: Mailer[] = [];
afterEach(async () => {
  for (const m of mailers.splice(0)) await m.close().catch(() => {});
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

/** An SMTP server that answers every AUTH exchange with a 535 quoting the lines it received. */
async function echoServer(): Promise<Echo> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.write('220 echo ESMTP\r\n');
    let buffer = '';
    let auth: string[] | undefined;
    socket.on('data', (data) => {
      buffer += data.toString('utf8');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (auth) {
          auth.push(line);
          // AUTH LOGIN: the user name, then the password, each after a 334.
          if (auth.length < 3) socket.write('334 UGFzc3dvcmQ6\r\n');
          else socket.write(`535 5.7.8 bad credentials: ${auth.splice(0).join(' ')}\r\n`), (auth = undefined);
        } else if (/^EHLO/i.test(line)) socket.write('250-echo\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n');
        else if (/^AUTH LOGIN$/i.test(line)) (auth = [line]), socket.write('334 VXNlcm5hbWU6\r\n');
        else if (/^AUTH/i.test(line)) socket.write(`535 5.7.8 bad credentials: ${line}\r\n`);
        else if (/^QUIT/i.test(line)) socket.end('221 bye\r\n');
        else socket.write('502 5.5.2 what\r\n');
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

function record(m: Mailer) {
  const events: unknown[] = [];
  for (const name of ['retry', 'throttle', 'sent', 'failed', 'progress', 'error'] as Array<keyof MailerEvents>) m.on(name, (e) => void events.push(e));
  return events;
}

/** Every form of the credentials that must not appear, and what a value looks like in full. */
function leaks(value: unknown, user: string, pass: string): string[] {
  const text = inspect(value, { depth: 12, showHidden: true, getters: true }) + String((value as Error)?.stack ?? '') + JSON.stringify(value, (_k, v: unknown) => (v instanceof Error ? { ...v, message: v.message } : v));
  const forms = [pass, encodeURIComponent(pass), b64(pass), authPlain(user, pass), authPlain(user, pass, user)];
  return forms.filter((form) => text.includes(form));
}

describe('credentials echoed by a server in its 535 reply', () => {
  // User names of 18, 19 and 20 bytes: the password at each byte alignment of AUTH PLAIN.
  const cases = [
    { name: 'AUTH PLAIN', user: 'a@example.org12345', auth: {} },
    { name: 'AUTH PLAIN', user: 'ab@example.org12345', auth: {} },
    { name: 'AUTH PLAIN', user: 'abc@example.org12345', auth: {} },
    { name: 'AUTH LOGIN', user: 'abc@example.org12345', auth: { authMethod: 'LOGIN' } },
  ];
  for (const { name, user, auth } of cases) {
    it(`reach no event, error, stats or batch report (${name}, a ${user.length}-byte user name)`, async () => {
      const { port } = await echoServer();
      const transport = { host: '127.0.0.1', port, ignoreTLS: true, ...auth, auth: { user, pass: PASS } };
      const url = `smtp://${encodeURIComponent(user)}:${encodeURIComponent(PASS)}@127.0.0.1:${port}/?ignoreTLS=true${name === 'AUTH LOGIN' ? '&authMethod=LOGIN' : ''}`;
      const m = createMailer({ providers: { options: { transport }, url: { transport: url } }, retry: { retries: 1, minDelay: 10, maxDelay: 20 } });
      mailers.push(m);
      const events = record(m);

      const errors: unknown[] = [];
      for (const provider of ['options', 'url']) errors.push(await m.send({ provider, from: 'a@example.org', to: 'x@example.net', text: 't' }).catch((e: unknown) => e));
      const report = await m.sendBatch([{ provider: 'options', from: 'a@example.org', to: 'y@example.net', text: 't' }]);

      expect(errors.every((e) => isDeliveryError(e) && e.decision === 'auth')).toBe(true);
      // The server did echo the line: the reply is there, with the credentials hidden.
      expect((errors[0] as { response: string }).response).toMatch(/^535 5\.7\.8 bad credentials: AUTH (PLAIN|LOGIN) .*\[redacted\]/);
      expect(report.failures[0]!.response).toContain('[redacted]');
      expect(events.some((e) => (e as { response?: string }).response?.includes('[redacted]'))).toBe(true);
      expect(leaks([errors, events, report, await m.stats()], user, PASS)).toEqual([]);
    });
  }

  it('reach no event or error when the password is given as a number (nodemailer sends its digits)', async () => {
    const { port } = await echoServer();
    const user = 'ab@example.org12345';
    const pass = 73915286;
    for (const authMethod of ['PLAIN', 'LOGIN']) {
      const m = createMailer({ providers: { n: { transport: { host: '127.0.0.1', port, ignoreTLS: true, authMethod, auth: { user, pass } } } }, retry: { retries: 0 } });
      mailers.push(m);
      const events = record(m);
      const error = await m.send({ from: 'a@example.org', to: 'x@example.net', text: 't' }).catch((e: unknown) => e);
      expect(isDeliveryError(error) && error.decision).toBe('auth');
      // The server echoed the AUTH exchange, so the digits were there to leak.
      expect((error as { response: string }).response).toContain('[redacted]');
      expect(leaks([error, events, await m.stats()], user, String(pass))).toEqual([]);
    }
  });

  it('reach no event or error with XOAUTH2', async () => {
    const { port } = await echoServer();
    const user = 'ab@example.org12345';
    const accessToken = 'ya29.a0AfH6SMBx-Token_Value';
    const m = createMailer({ providers: { o: { transport: { host: '127.0.0.1', port, ignoreTLS: true, auth: { type: 'OAuth2', user, accessToken } } } }, retry: { retries: 0 } });
    mailers.push(m);
    const events = record(m);
    const error = await m.send({ from: 'a@example.org', to: 'x@example.net', text: 't' }).catch((e: unknown) => e);
    expect(isDeliveryError(error)).toBe(true);
    const text = inspect([error, events], { depth: 12, showHidden: true });
    expect(text).not.toContain(accessToken);
    expect(text).not.toContain(xoauth2(user, accessToken));
  });
});

describe('a transport nodemailer cannot create', () => {
  it('fails the send as permanent, with no credentials, instead of throwing out of the lane', async () => {
    const pass = 'Sup3r-S3cret-Pa55';
    // Valid when createMailer reads it; one nodemailer refuses (a port that is not a number) by the
    // time the lane opens a connection: what a URL the schema missed would do.
    let checked = false;
    const transport = {
      get url() {
        return checked ? `smtp://user:${pass}@127.0.0.1:notaport` : `smtp://user:${pass}@127.0.0.1:2525`;
      },
    };
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(`${warning.name} ${warning.message}`);
    process.on('warning', onWarning);
    try {
      const m = createMailer({ providers: { p: { transport } }, retry: { retries: 2, minDelay: 10, maxDelay: 20 } });
      mailers.push(m);
      checked = true;
      const events = record(m);
      const error = await m.send({ from: 'a@example.org', to: 'x@example.net', text: 't' }).catch((e: unknown) => e);

      expect(isDeliveryError(error) && error.decision).toBe('permanent');
      expect((error as Error).message).toContain('could not create the nodemailer transport');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const text = inspect([error, events, warnings], { depth: 12, showHidden: true, getters: true });
      expect(text).not.toContain(pass);
      expect(text).not.toContain('notaport');
    } finally {
      process.off('warning', onWarning);
    }
  }, 10_000);
});
