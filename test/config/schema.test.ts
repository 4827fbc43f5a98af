import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../src/config/parse.js';
import { createMailer } from '../../src/index.js';
import { ConfigError, isConfigError } from '../../src/errors.js';

const smtp = { host: 'smtp.example.org', port: 587, auth: { user: 'u', pass: 's3cret-pass' } };

function configError(input: unknown): ConfigError {
  try {
    parseOptions(input);
  } catch (error) {
    expect(isConfigError(error)).toBe(true);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseOptions', () => {
  it('fills in every default', () => {
    const config = parseOptions({ providers: { main: { transport: smtp } } });
    expect(config.keyPrefix).toBe('mailpacer');
    expect(config.onRedisDown).toBe('wait');
    expect(config.retry).toEqual({ retries: 8, minDelay: 1_000, maxDelay: 900_000, factor: 2, greylistDelay: 300_000, maxRetryTime: 21_600_000, resendInDoubt: false });
    expect(config.providers.main).toMatchObject({ maxConnections: 5, maxMessagesPerConnection: 100 });
    expect(config.adaptive).toEqual({ decrease: 0.7, increase: 0.05, minRate: 0.05, cooldown: 1_000 });
  });

  it('parses durations in every accepted form', () => {
    const config = parseOptions({
      providers: { main: { transport: smtp, rate: [{ max: 14, per: '1s' }, { max: 50_000, per: '24h' }, { max: 5, per: 250 }] } },
      retry: { minDelay: '250ms', maxDelay: '5m', greylistDelay: '1.5s', maxRetryTime: '2d' },
    });
    expect(config.retry).toMatchObject({ minDelay: 250, maxDelay: 300_000, greylistDelay: 1_500, maxRetryTime: 172_800_000 });
    expect(config.providers.main!.rate).toEqual([
      { max: 14, perMs: 1_000, burst: 1 },
      { max: 50_000, perMs: 86_400_000, burst: 50_000 },
      { max: 5, perMs: 250, burst: 1 },
    ]);
  });

  it('passes the transport object through untouched, every key kept', () => {
    const transport = { ...smtp, tls: { rejectUnauthorized: false }, dkim: { domainName: 'example.org', keySelector: 's1', privateKey: 'k' }, proxy: 'socks5://127.0.0.1:1080', ignoreTLS: true, custom: 1 };
    const config = parseOptions({ providers: { main: { transport } } });
    expect(config.providers.main!.transport).toBe(transport);
    expect(transport).toEqual({ ...smtp, tls: { rejectUnauthorized: false }, dkim: { domainName: 'example.org', keySelector: 's1', privateKey: 'k' }, proxy: 'socks5://127.0.0.1:1080', ignoreTLS: true, custom: 1 });
  });

  it('names the path and the expected form of a bad duration', () => {
    const error = configError({ providers: { ses: { transport: smtp, rate: [{ max: 14, per: 'one second' }] } } });
    expect(error.message).toContain('providers.ses.rate[0].per: expected a duration like "250ms", "1s", "5m", "24h"');
    expect(error.issues.map((i) => i.path)).toContain('providers.ses.rate[0].per');
  });

  it('refuses a rate window of 0 or of more than 366 days, naming it', () => {
    for (const per of [0, '0s', '367d']) {
      const error = configError({ providers: { ses: { transport: smtp, rate: [{ max: 14, per: '1s' }, { max: 5, per }] } } });
      expect(error.message).toContain('providers.ses.rate[1].per: expected a window longer than 0 and at most 366 days');
    }
    expect(() => parseOptions({ providers: { ses: { transport: smtp, rate: { max: 5, per: '366d' } } } })).not.toThrow();
  });

  it('names an unknown option, so that a typo points at its line', () => {
    const error = configError({ providers: { main: { transport: smtp, maxConnection: 3 } } });
    expect(error.message).toContain('providers.main.maxConnection: unknown option');
  });

  it('refuses nodemailer pool keys that mailpacer owns, saying what to use instead', () => {
    const error = configError({ providers: { main: { transport: { ...smtp, rateLimit: 5 } } } });
    expect(error.message).toContain('providers.main.transport.rateLimit: not allowed here');
    expect(error.message).toContain('providers.<name>.rate');
  });

  it('refuses those pool keys in a URL query too (nodemailer lets the query override every option), without quoting the URL', () => {
    const url = 'smtp://user:S3cr3t-pass@smtp.example.org:587/?pool=true&maxConnections=50&rateLimit=1&name=relay.example';
    for (const [transport, path] of [
      [url, 'providers.main.transport'],
      [{ url }, 'providers.main.transport.url'],
    ] as const) {
      const error = configError({ providers: { main: { transport } } });
      expect(error.issues.map((i) => [i.path, i.message])).toEqual([
        [path, "the URL's query sets rateLimit, which is not allowed here: pacing is mailpacer's: set providers.<name>.rate instead"],
        [path, "the URL's query sets maxConnections, which is not allowed here: set providers.<name>.maxConnections instead"],
        [path, "the URL's query sets pool, which is not allowed here: mailpacer pools connections itself (one pooled connection per connection slot)"],
      ]);
      expect(error.message).not.toContain('S3cr3t-pass');
    }
    // Other query options are nodemailer's, passed on.
    expect(() => parseOptions({ providers: { main: { transport: 'smtp://smtp.example.org:587/?name=relay.example&ignoreTLS=true' } } })).not.toThrow();
  });

  it('rejects bad numbers, bad ports and empty providers with the path', () => {
    expect(configError({ providers: { a: { transport: smtp, maxConnections: 0 } } }).message).toContain('providers.a.maxConnections');
    expect(configError({ providers: { a: { transport: { host: 'x', port: 70000 } } } }).message).toContain('providers.a.transport.port: expected a port number');
    expect(configError({ providers: {} }).message).toContain('providers: expected at least one provider');
    expect(configError({}).message).toContain('providers');
    expect(configError(null).message).toContain('expected an options object');
    expect(configError({ providers: { a: { transport: smtp } }, retry: { minDelay: '1m', maxDelay: '1s' } }).message).toContain('retry.maxDelay: maxDelay must not be less than minDelay');
    expect(configError({ providers: { a: { transport: smtp } }, redis: 'localhost:6379' }).message).toContain('redis: expected a redis:// or rediss:// URL');
    expect(configError({ providers: { a: { transport: smtp } }, hooks: { onRetry: 'log' } }).message).toContain('hooks.onRetry: expected a function');
  });

  it('never puts credentials in the message of a ConfigError', () => {
    const error = configError({ providers: { a: { transport: { ...smtp, port: 'x' } }, b: { transport: smtp, rate: { max: -1, per: '1s' } } } });
    expect(error.message).not.toContain('s3cret-pass');
    expect(JSON.stringify(error.issues)).not.toContain('s3cret-pass');
  });

  it('refuses an smtp:// URL that nodemailer cannot parse, naming the path, with no credentials', () => {
    const pass = 'S3cr3t-Pa55word';
    for (const url of [`smtp://user:${pass}@host:notaport`, `smtp://user:${pass}@host:99999`, `smtps://user:${pass}@host:0`, `smtp://user:${pass}#1@host:25`, `smtp://user:${pass}@host:-1`]) {
      for (const [transport, path] of [[url, 'providers.main.transport'], [{ url }, 'providers.main.transport.url']] as const) {
        const error = configError({ providers: { main: { transport } } });
        expect(error.message).toBe(`Invalid mailpacer options: ${path}: expected an smtp:// or smtps:// URL with a port from 1 to 65535 (special characters of the user name and password percent-encoded)`);
        expect(inspect(error, { depth: 8, showHidden: true })).not.toContain(pass);
      }
    }
  });

  it('refuses a redis:// URL that ioredis cannot parse with a ConfigError naming the path, with no credentials', () => {
    const pass = 'S3cr3t-Pa55word';
    const transport = { providers: { main: { transport: smtp } } };
    for (const redis of [`redis://:${pass}@127.0.0.1:notaport`, `rediss://:${pass}@127.0.0.1:70000`, `redis://:${pass}@127.0.0.1:0`, `redis://:${pass}%zz@127.0.0.1:6379`]) {
      let error: unknown;
      try {
        createMailer({ ...transport, redis });
      } catch (thrown) {
        error = thrown;
      }
      expect(isConfigError(error)).toBe(true);
      expect((error as Error).message).toBe('Invalid mailpacer options: redis: expected a redis:// or rediss:// URL with a port from 1 to 65535 (special characters of the user name and password percent-encoded)');
      expect(inspect(error, { depth: 8, showHidden: true })).not.toContain(pass);
    }
  });

  it('accepts smtp:// and redis:// URLs with or without a port, credentials percent-encoded', () => {
    for (const transport of ['smtps://u:p%40ss%23@smtp.example.org:465', 'smtp://smtp.example.org', 'SMTP://[::1]:2525/?ignoreTLS=true', { url: 'smtp://u:p@127.0.0.1:2525', tls: {} }]) {
      expect(parseOptions({ providers: { a: { transport } } }).providers.a!.transport).toBe(transport);
    }
    for (const redis of ['redis://:p%40ss@127.0.0.1:6379/2', 'rediss://user:pw@redis.example.org', 'redis://127.0.0.1']) {
      expect(parseOptions({ providers: { a: { transport: smtp } }, redis }).redis).toBe(redis);
    }
  });

  it('accepts any nodemailer transport object and an smtp URL', () => {
    const transport = { name: 'custom', version: '1', send: () => {} };
    expect(parseOptions({ providers: { a: { transport } } }).providers.a!.transport).toBe(transport);
    expect(parseOptions({ providers: { a: { transport: 'smtp://u:p@127.0.0.1:2525' } } }).providers.a!.transport).toBe('smtp://u:p@127.0.0.1:2525');
  });
});
