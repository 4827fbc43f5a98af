import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../src/config/parse.js';
import { presets, type PresetConfig } from '../../src/config/presets.js';
import type { ProviderOptions } from '../../src/config/schema.js';
import { ConfigError, isConfigError } from '../../src/errors.js';

const USER = 'sender-user@example.org';
const PASS = 'pass-0123456789-secret';
const auth = { user: USER, pass: PASS };

/** One call of every preset, with credentials that the checks below look for. */
const every: Record<string, () => PresetConfig> = {
  sesSandbox: () => presets.ses({ region: 'eu-west-1', auth, sandbox: true }),
  sesProduction: () => presets.ses({ region: 'us-east-1', auth, maxSendRate: 14, dailyQuota: 50_000 }),
  microsoft365: () => presets.microsoft365({ auth }),
  outlook: () => presets.outlook({ auth }),
  gmail: () => presets.gmail({ auth }),
  googleWorkspace: () => presets.googleWorkspace({ auth }),
  googleRelay: () => presets.googleRelay({ auth }),
  sendgrid: () => presets.sendgrid({ apiKey: PASS }),
  mailgun: () => presets.mailgun({ auth }),
  postmark: () => presets.postmark({ serverToken: PASS }),
  brevo: () => presets.brevo({ auth }),
};

function presetError(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    expect(isConfigError(error)).toBe(true);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** Every path in a value at which one of the strings appears. */
function pathsOf(value: unknown, secrets: readonly string[], path = ''): string[] {
  if (typeof value === 'string') return secrets.some((secret) => value.includes(secret)) ? [path] : [];
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, inner]) => pathsOf(inner, secrets, path ? `${path}.${key}` : key));
}

describe('presets: every one', () => {
  it.each(Object.entries(every))('%s passes parseOptions', (_name, make) => {
    const preset = make();
    const config = parseOptions({ providers: { p: preset } });
    expect(config.providers.p!.transport).toBe(preset.transport);
    // Assignable to what users write, without a cast.
    const asOptions: ProviderOptions = preset;
    expect(asOptions).toBe(preset);
  });

  it.each(Object.entries(every))('%s keeps credentials under transport.auth only', (_name, make) => {
    const paths = pathsOf(make(), [USER, PASS]);
    expect(paths.length).toBeGreaterThan(0);
    for (const path of paths) expect(path).toMatch(/^transport\.auth\./);
  });

  it.each(Object.entries(every))('%s requires TLS: implicit, or STARTTLS that must succeed', (_name, make) => {
    const { transport } = make();
    if (transport.secure) expect(transport.port).toBe(465);
    else expect(transport.requireTLS).toBe(true);
  });

  it('returns a fresh object each call, so that one user\'s changes do not leak into another\'s', () => {
    const first = presets.microsoft365({ auth });
    first.rate.push({ max: 1, per: '1s' });
    (first.transport.auth as { pass: string }).pass = 'changed';
    const second = presets.microsoft365({ auth });
    expect(second.rate).toHaveLength(2);
    expect(second.transport.auth).toEqual(auth);
    expect(auth.pass).toBe(PASS);
  });
});

describe('presets: overriding by spreading', () => {
  it('replaces a limit', () => {
    const config = parseOptions({ providers: { p: { ...presets.gmail({ auth }), maxConnections: 2 } } });
    expect(config.providers.p!.maxConnections).toBe(2);
  });

  it('replaces one transport key and keeps the others', () => {
    const base = presets.sendgrid({ apiKey: PASS });
    const preset = { ...base, transport: { ...base.transport, port: 2525 } };
    const config = parseOptions({ providers: { p: preset } });
    expect(config.providers.p!.transport).toEqual({ host: 'smtp.sendgrid.net', port: 2525, secure: false, requireTLS: true, auth: { user: 'apikey', pass: PASS } });
  });

  it('replaces the rate windows', () => {
    const config = parseOptions({ providers: { p: { ...presets.postmark({ serverToken: PASS }), rate: { max: 50, per: '1s' } } } });
    expect(config.providers.p!.rate).toEqual({ max: 50, perMs: 1_000, burst: 1 });
  });
});

describe('presets.ses', () => {
  it('connects to the Region\'s SMTP endpoint on 587 with STARTTLS required', () => {
    expect(presets.ses({ region: 'eu-west-1', auth, sandbox: true }).transport).toEqual({
      host: 'email-smtp.eu-west-1.amazonaws.com',
      port: 587,
      secure: false,
      requireTLS: true,
      auth,
    });
  });

  it('uses TLS from the start on 465 and 2465', () => {
    expect(presets.ses({ region: 'eu-west-1', auth, sandbox: true, port: 465 }).transport).toMatchObject({ port: 465, secure: true });
    expect(presets.ses({ region: 'eu-west-1', auth, sandbox: true, port: 2465 }).transport).toMatchObject({ port: 2465, secure: true });
    expect(presets.ses({ region: 'eu-west-1', auth, sandbox: true, port: 2587 }).transport).toMatchObject({ port: 2587, secure: false, requireTLS: true });
  });

  it('paces a sandbox account at 1/s and 200 per 24 hours, on one connection', () => {
    const preset = presets.ses({ region: 'eu-west-1', auth, sandbox: true });
    expect(preset.rate).toEqual([{ max: 1, per: '1s' }, { max: 200, per: '24h' }]);
    expect(preset.maxConnections).toBe(1);
    expect(preset.maxRecipientsPerMessage).toBe(50);
    expect(parseOptions({ providers: { ses: preset } }).providers.ses!.rate).toEqual([
      { max: 1, perMs: 1_000, burst: 1 },
      { max: 200, perMs: 86_400_000, burst: 200 },
    ]);
  });

  it('paces a production account at its own rate and quota', () => {
    const preset = presets.ses({ region: 'us-east-1', auth, maxSendRate: 14, dailyQuota: 50_000 });
    expect(preset.rate).toEqual([{ max: 14, per: '1s' }, { max: 50_000, per: '24h' }]);
    expect(preset.maxConnections).toBe(5);
    expect(preset.maxRecipientsPerMessage).toBe(50);
  });

  it('adds no daily window without a quota, or for an unlimited one (-1)', () => {
    expect(presets.ses({ region: 'us-east-1', auth, maxSendRate: 200 }).rate).toEqual([{ max: 200, per: '1s' }]);
    expect(presets.ses({ region: 'us-east-1', auth, maxSendRate: 200, dailyQuota: -1 }).rate).toEqual([{ max: 200, per: '1s' }]);
  });

  it('spaces a fractional send rate without exceeding it', () => {
    expect(presets.ses({ region: 'us-east-1', auth, maxSendRate: 0.5 }).rate).toEqual([{ max: 1, per: 2_000 }]);
    expect(presets.ses({ region: 'us-east-1', auth, maxSendRate: 14.5 }).rate).toEqual([{ max: 1, per: 69 }]);
  });

  it('takes a sandbox account\'s own numbers when given', () => {
    expect(presets.ses({ region: 'eu-west-1', auth, sandbox: true, maxSendRate: 2, dailyQuota: 1_000 }).rate).toEqual([
      { max: 2, per: '1s' },
      { max: 1_000, per: '24h' },
    ]);
  });

  it('refuses a production account without maxSendRate, naming the option', () => {
    const error = presetError(() => presets.ses({ region: 'us-east-1', auth }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('ERR_MAILPACER_CONFIG');
    expect(error.message).toContain('presets.ses: maxSendRate is required');
    expect(error.message).toContain('sandbox: true');
  });

  it('refuses a bad region, rate, quota or port', () => {
    expect(presetError(() => presets.ses({ region: 'Ireland', auth, sandbox: true })).message).toContain('presets.ses: region');
    expect(presetError(() => presets.ses({ region: 'us-east-1', auth, maxSendRate: 0 })).message).toContain('presets.ses: maxSendRate');
    expect(presetError(() => presets.ses({ region: 'us-east-1', auth, maxSendRate: 1, dailyQuota: 1.5 })).message).toContain('presets.ses: dailyQuota');
    expect(presetError(() => presets.ses({ region: 'us-east-1', auth, sandbox: true, port: 2525 as 587 })).message).toContain('presets.ses: port');
  });
});

describe('presets: hosts, ports and published numbers', () => {
  it('microsoft365: smtp.office365.com:587, 30/min, 10,000/24h, 3 connections, 500 recipients', () => {
    const preset = presets.microsoft365({ auth });
    expect(preset.transport).toEqual({ host: 'smtp.office365.com', port: 587, secure: false, requireTLS: true, auth });
    expect(preset.rate).toEqual([{ max: 30, per: '1m' }, { max: 10_000, per: '24h' }]);
    expect(preset.maxConnections).toBe(3);
    expect(preset.maxRecipientsPerMessage).toBe(500);
    expect(parseOptions({ providers: { m365: preset } }).providers.m365!.rate).toEqual([
      { max: 30, perMs: 60_000, burst: 1 },
      { max: 10_000, perMs: 86_400_000, burst: 10_000 },
    ]);
  });

  it('microsoft365 accepts OAuth2 credentials as they are', () => {
    const oauth = { type: 'OAuth2' as const, user: USER, accessToken: PASS };
    expect(presets.microsoft365({ auth: oauth }).transport.auth).toEqual(oauth);
  });

  it('outlook: smtp-mail.outlook.com:587; subscriber numbers only when asked', () => {
    const free = presets.outlook({ auth });
    expect(free.transport).toMatchObject({ host: 'smtp-mail.outlook.com', port: 587, secure: false, requireTLS: true });
    expect(free.rate).toEqual([{ max: 20, per: '1m' }, { max: 300, per: '24h' }]);
    expect(free.maxRecipientsPerMessage).toBe(100);
    expect(free.maxConnections).toBe(1);
    const subscriber = presets.outlook({ auth, subscriber: true });
    expect(subscriber.rate).toEqual([{ max: 20, per: '1m' }, { max: 1_000, per: '24h' }]);
    expect(subscriber.maxRecipientsPerMessage).toBe(500);
  });

  it('gmail: smtp.gmail.com:465 with TLS, 500/24h, 100 recipients', () => {
    const preset = presets.gmail({ auth });
    expect(preset.transport).toEqual({ host: 'smtp.gmail.com', port: 465, secure: true, auth });
    expect(preset.rate).toEqual([{ max: 20, per: '1m' }, { max: 500, per: '24h' }]);
    expect(preset.maxRecipientsPerMessage).toBe(100);
    expect(presets.gmail({ auth, port: 587 }).transport).toMatchObject({ port: 587, secure: false, requireTLS: true });
  });

  it('googleWorkspace: 2,000/24h, or 500 for a trial account', () => {
    expect(presets.googleWorkspace({ auth }).rate).toEqual([{ max: 20, per: '1m' }, { max: 2_000, per: '24h' }]);
    expect(presets.googleWorkspace({ auth, trial: true }).rate).toEqual([{ max: 20, per: '1m' }, { max: 500, per: '24h' }]);
    expect(presets.googleWorkspace({ auth }).transport).toMatchObject({ host: 'smtp.gmail.com', port: 465, secure: true });
  });

  it('googleRelay: smtp-relay.gmail.com:587, 10,000/24h, with or without credentials', () => {
    const preset = presets.googleRelay({ auth });
    expect(preset.transport).toEqual({ host: 'smtp-relay.gmail.com', port: 587, secure: false, requireTLS: true, auth });
    expect(preset.rate).toEqual([{ max: 10, per: '1s' }, { max: 10_000, per: '24h' }]);
    expect(preset.maxRecipientsPerMessage).toBe(100);
    const byAddress = presets.googleRelay();
    expect(byAddress.transport).toEqual({ host: 'smtp-relay.gmail.com', port: 587, secure: false, requireTLS: true });
    expect(() => parseOptions({ providers: { relay: byAddress } })).not.toThrow();
  });

  it('sendgrid: smtp.sendgrid.net:587, user "apikey", 5,000 messages per connection, 1,000 recipients', () => {
    const preset = presets.sendgrid({ apiKey: PASS });
    expect(preset.transport).toEqual({ host: 'smtp.sendgrid.net', port: 587, secure: false, requireTLS: true, auth: { user: 'apikey', pass: PASS } });
    expect(preset.maxMessagesPerConnection).toBe(5_000);
    expect(preset.maxRecipientsPerMessage).toBe(1_000);
    expect(preset.rate).toEqual([{ max: 10, per: '1s' }]);
    expect(presets.sendgrid({ apiKey: PASS, port: 465 }).transport).toMatchObject({ port: 465, secure: true });
  });

  it('mailgun: US and EU hosts on 587', () => {
    expect(presets.mailgun({ auth }).transport).toMatchObject({ host: 'smtp.mailgun.org', port: 587, requireTLS: true });
    expect(presets.mailgun({ auth, region: 'eu' }).transport).toMatchObject({ host: 'smtp.eu.mailgun.org', port: 587 });
    expect(presets.mailgun({ auth }).maxRecipientsPerMessage).toBe(1_000);
    expect(presetError(() => presets.mailgun({ auth, region: 'asia' as 'eu' })).message).toContain('presets.mailgun: region');
  });

  it('postmark: the token as user and password, 50 recipients, broadcast host on request', () => {
    const preset = presets.postmark({ serverToken: PASS });
    expect(preset.transport).toEqual({ host: 'smtp.postmarkapp.com', port: 587, secure: false, requireTLS: true, auth: { user: PASS, pass: PASS } });
    expect(preset.maxRecipientsPerMessage).toBe(50);
    expect(presets.postmark({ serverToken: PASS, broadcast: true }).transport.host).toBe('smtp-broadcasts.postmarkapp.com');
    expect(presetError(() => presets.postmark({ serverToken: PASS, port: 465 as 587 })).message).toContain('presets.postmark: port');
  });

  it('brevo: smtp-relay.brevo.com:587, STARTTLS required', () => {
    const preset = presets.brevo({ auth });
    expect(preset.transport).toEqual({ host: 'smtp-relay.brevo.com', port: 587, secure: false, requireTLS: true, auth });
    expect(preset.maxRecipientsPerMessage).toBeUndefined();
    expect(parseOptions({ providers: { brevo: preset } }).providers.brevo!.maxRecipientsPerMessage).toBeUndefined();
  });

  it('adds the plan\'s daily quota to a sending service when given', () => {
    expect(presets.brevo({ auth, dailyQuota: 300 }).rate).toEqual([{ max: 10, per: '1s' }, { max: 300, per: '24h' }]);
    expect(presets.mailgun({ auth, dailyQuota: 100 }).rate).toEqual([{ max: 10, per: '1s' }, { max: 100, per: '24h' }]);
    expect(presetError(() => presets.sendgrid({ apiKey: PASS, dailyQuota: 0 })).message).toContain('presets.sendgrid: dailyQuota');
  });
});

describe('presets: bad credentials', () => {
  it('name what is missing, without echoing any secret', () => {
    expect(presetError(() => presets.gmail({} as never)).message).toContain('presets.gmail: auth is required');
    expect(presetError(() => presets.microsoft365({ auth: { user: USER, pass: '' } })).message).toContain('presets.microsoft365: auth.pass is required');
    expect(presetError(() => presets.brevo({ auth: { user: '', pass: PASS } })).message).toContain('presets.brevo: auth.user is required');
    expect(presetError(() => presets.sendgrid({ apiKey: '' })).message).toContain('presets.sendgrid: apiKey is required');
    expect(presetError(() => presets.postmark(undefined as never)).message).toContain('presets.postmark: expected options');
    const error = presetError(() => presets.ses({ region: 'nowhere', auth }));
    expect(error.message).not.toContain(PASS);
    expect(error.message).not.toContain(USER);
  });
});
