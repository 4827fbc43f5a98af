import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../src/config/parse.js';
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

  it('names an unknown option, so that a typo points at its line', () => {
    const error = configError({ providers: { main: { transport: smtp, maxConnection: 3 } } });
    expect(error.message).toContain('providers.main.maxConnection: unknown option');
  });

  it('refuses nodemailer pool keys that mailpacer owns, saying what to use instead', () => {
    const error = configError({ providers: { main: { transport: { ...smtp, rateLimit: 5 } } } });
    expect(error.message).toContain('providers.main.transport.rateLimit: not allowed here');
    expect(error.message).toContain('providers.<name>.rate');
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

  it('accepts any nodemailer transport object and an smtp URL', () => {
    const transport = { name: 'custom', version: '1', send: () => {} };
    expect(parseOptions({ providers: { a: { transport } } }).providers.a!.transport).toBe(transport);
    expect(parseOptions({ providers: { a: { transport: 'smtp://u:p@127.0.0.1:2525' } } }).providers.a!.transport).toBe('smtp://u:p@127.0.0.1:2525');
  });
});
