import nodemailer from 'nodemailer';
import { parseOptions } from '../config/parse.js';
import type { ProviderConfig } from '../config/schema.js';
import { createMailer } from '../index.js';
import { asWindows } from '../lanes/lanes.js';
import { loadRedis } from '../limiter/connect.js';
import { collectSecrets, createRedactor } from '../redact.js';
import { loadConfigFile } from './config-file.js';
import { count, duration, errorText, windowText, type Output } from './format.js';

export interface CheckOptions {
  config: string;
  /** Batch size to estimate the sending time of. @default 10000 */
  count?: number;
  out?: Output;
  verbose?: boolean;
  /** Connection and greeting timeout of each verification. @default 10000 */
  timeoutMs?: number;
}

/** A rate window in milliseconds, with the burst the limiter allows (as the schema fills it in). */
interface Window {
  max: number;
  perMs: number;
  burst: number;
}

/**
 * `mailpacer check`: loads and validates the config (a bad option throws `ConfigError`), verifies
 * each provider's SMTP connection and login, and shows each lane's limits and what they mean for a
 * batch of `count`. Resolves with the exit status: 1 when anything failed.
 */
export async function runCheck(options: CheckOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const n = options.count ?? 10_000;
  const input = await loadConfigFile(options.config);
  // createMailer is the validation: a bad option throws a ConfigError naming it.
  await createMailer(input).close();
  // The same options with the schema's defaults filled in (durations in ms, bursts), to show them.
  const config = parseOptions(input);
  out.write(`config ${options.config}: valid\n`);

  let failures = 0;
  if (input.redis !== undefined) failures += await checkRedis(input.redis, out, options);
  for (const [name, provider] of Object.entries(config.providers)) {
    out.write(`\nprovider ${name}\n`);
    failures += await verifyTransport(provider, out, options);
    const windows = asWindows(provider.rate);
    const limits = windows.length ? windows.map((w) => windowText(w.max, w.perMs)).join(', ') : 'no rate limit';
    out.write(`  limits      ${limits}; ${plural(provider.maxConnections, 'connection')}; ${plural(provider.maxMessagesPerConnection, 'message')} per connection\n`);
    out.write(`  estimate    ${estimate(n, windows, provider.maxConnections)}\n`);
  }
  out.write(failures ? `\n${failures} check${failures === 1 ? '' : 's'} failed\n` : '\nall checks passed\n');
  return failures ? 1 : 0;
}

async function verifyTransport(provider: ProviderConfig, out: Output, options: CheckOptions): Promise<number> {
  const transport = provider.transport as unknown;
  if (typeof transport === 'object' && transport !== null && ('send' in transport || 'sendMail' in transport)) {
    out.write('  transport   custom transport object: not verified (check it by sending a message)\n');
    return 0;
  }
  const base = typeof transport === 'string' ? { url: transport } : (transport as Record<string, unknown>);
  const timeout = options.timeoutMs ?? 10_000;
  const where = describeTransport(base);
  const redact = createRedactor(collectSecrets(transport));
  const transporter = nodemailer.createTransport({ connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout, ...base });
  const started = Date.now();
  try {
    await transporter.verify();
    out.write(`  transport   ${where}: connected${hasAuth(base) ? ' and logged in' : ''} (${duration(Date.now() - started)})\n`);
    return 0;
  } catch (error) {
    out.write(`  transport   ${where}: FAILED: ${redact(errorText(error, options.verbose ?? false))}\n`);
    return 1;
  } finally {
    transporter.close();
  }
}

async function checkRedis(redis: unknown, out: Output, options: CheckOptions): Promise<number> {
  const ours = typeof redis === 'string';
  const url = ours ? new URL(redis) : undefined;
  const where = url ? `${url.protocol}//${url.host}` : 'the configured client';
  // Loaded here, not with the CLI: `mailpacer send` without Redis must not pay for ioredis (loading
  // it slows nodemailer down, docs/benchmarks.md).
  const own = ours ? new (loadRedis())(redis, { lazyConnect: true, connectTimeout: options.timeoutMs ?? 10_000, maxRetriesPerRequest: 0, retryStrategy: () => null }) : undefined;
  const client = own ?? (redis as { ping(): Promise<unknown> });
  // ioredis rejects a refused connection with "Connection is closed."; its 'error' event says why.
  let cause: Error | undefined;
  own?.on('error', (error: Error) => (cause ??= error));
  try {
    if (own) await own.connect();
    await client.ping();
    out.write(`redis ${where}: reachable\n`);
    return 0;
  } catch (error) {
    out.write(`redis ${where}: FAILED: ${(cause ?? (error as Error)).message}\n`);
    return 1;
  } finally {
    own?.disconnect();
  }
}

/** The least time a batch of `n` takes under the windows: the slowest window decides. */
export function estimate(n: number, windows: readonly Window[], connections: number): string {
  const what = plural(n, 'message');
  if (windows.length === 0) return `${what}: no rate limit, as fast as ${plural(connections, 'connection')} and the server allow`;
  const times = windows.map((w) => ({ w, ms: windowTime(n, w) }));
  const slowest = times.reduce((a, b) => (b.ms > a.ms ? b : a));
  const how = (w: Window) => (w.burst > 1 && n > w.burst ? `: ${count(w.burst)} at once, then one every ${duration(w.perMs / w.max)}` : '');
  const others = times.filter((t) => t !== slowest).map(({ w, ms }) => `${windowText(w.max, w.perMs)}: ${ms === 0 ? 'fits in one window' : `${duration(ms)} alone`}`);
  const head = slowest.ms === 0 ? `${what}: no wait, within every window` : `${what} take at least ${duration(slowest.ms)}, bound by ${windowText(slowest.w.max, slowest.w.perMs)}${how(slowest.w)}`;
  return others.length ? `${head} (${others.join('; ')})` : head;
}

/** GCRA: `burst` sends go at once, each further one waits `perMs / max`. */
function windowTime(n: number, w: Window): number {
  return Math.max(0, n - w.burst) * (w.perMs / w.max);
}

const plural = (n: number, what: string) => `${count(n)} ${what}${n === 1 ? '' : 's'}`;

function describeTransport(options: Record<string, unknown>): string {
  if (typeof options.url === 'string') {
    const url = new URL(options.url);
    return `${url.protocol}//${url.host}`;
  }
  if (typeof options.service === 'string') return `service ${options.service}`;
  return `${options.secure ? 'smtps' : 'smtp'}://${String(options.host)}:${String(options.port ?? (options.secure ? 465 : 587))}`;
}

const hasAuth = (options: Record<string, unknown>) => options.auth !== undefined || (typeof options.url === 'string' && new URL(options.url).username !== '');
