import { z } from 'zod';
import type { MailerHooks } from '../events.js';
import { parseDuration } from './duration.js';

const DURATION_HINT = 'expected a duration like "250ms", "1s", "5m", "24h", or milliseconds';

/** A duration: milliseconds or `'250ms'`, `'1s'`, `'5m'`, `'24h'`, `'7d'`; parsed to milliseconds. */
export const duration = z.union([z.number(), z.string()], { error: DURATION_HINT }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `${DURATION_HINT}, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

const positiveInt = (what: string) =>
  z.number({ error: `expected ${what} as a whole number greater than 0` }).int({ error: `expected ${what} as a whole number greater than 0` }).positive({ error: `expected ${what} as a whole number greater than 0` });

/**
 * One rate window: `max` sends per `per`.
 *
 * - **`per` of a minute or less: a pace.** Sends are spaced by GCRA, `burst` of them back to back
 *   after an idle period (default 1: even spacing, `{ max: 30, per: '1m' }` is one send every 2 s).
 *   With a burst of B, an interval of length `per` that starts with the burst can hold up to
 *   `max + B - 1` sends; with the default 1, at most `max`.
 * - **`per` longer than a minute: a quota,** counted over a rolling `per` in 24 buckets, the way
 *   SES, Exchange Online and Google count a rolling 24 hours: up to `max` sends may go at once
 *   (paced by the shorter windows), and no interval of length `per` ever holds more than `max`.
 *   The buckets cost up to one bucket's share of the quota (about 4 %) in steady state. `burst`
 *   means nothing here and is refused with a `ConfigError`; add a shorter window to pace sends.
 *   The adaptive slow-down paces the shorter windows and leaves the quota as it is. Once the quota
 *   is used up, the lane waits for it holding no connection, and the wait does not count against
 *   `retry.maxRetryTime`.
 *
 * The threshold (60 s) is `QUOTA_MIN_EXCLUSIVE_PER_MS` in `src/limiter/gcra.ts`. The parsed window
 * of a quota carries `burst: max`, which the limiter ignores.
 */
const MAX_WINDOW_MS = 366 * 24 * 3_600_000;

export const rateWindowSchema = z
  .object({
    /** Sends admitted in any interval of length `per`. */
    max: positiveInt('the number of sends per window'),
    /** Length of the window. */
    per: duration,
    /**
     * How many sends may go back to back after an idle period, for windows of a minute or less.
     * Refused on longer windows (a quota: at most `max` in any `per`, see above).
     * @default 1 (even spacing)
     */
    burst: positiveInt('a burst size').optional(),
  })
  .strict()
  .superRefine(({ per, burst }, ctx) => {
    // A window of 0 would admit every send at once; one over a year is a typo for a shorter one.
    if (!(per > 0 && per <= MAX_WINDOW_MS)) {
      ctx.addIssue({ code: 'custom', path: ['per'], message: `expected a window longer than 0 and at most 366 days, got ${per} ms` });
    }
    if (burst !== undefined && per > 60_000) {
      ctx.addIssue({
        code: 'custom',
        path: ['burst'],
        message:
          'burst applies to windows of a minute or less; a longer window is a quota (at most max sends in any interval of length per, up to max at once): remove burst, or add a shorter window to pace sends',
      });
    }
  })
  .transform(({ max, per, burst }) => ({ max, perMs: per, burst: per <= 60_000 ? Math.min(max, burst ?? 1) : max }));

// Keys of nodemailer's pool that mailpacer owns: pacing and requeueing happen in one place.
const OWNED_TRANSPORT_KEYS: Record<string, string> = {
  rateLimit: 'pacing is mailpacer\'s: set providers.<name>.rate instead',
  rateDelta: 'pacing is mailpacer\'s: set providers.<name>.rate instead',
  maxConnections: 'set providers.<name>.maxConnections instead',
  maxMessages: 'set providers.<name>.maxMessagesPerConnection instead',
  maxRequeues: 'retries are mailpacer\'s: set retry.retries instead',
  pool: 'mailpacer pools connections itself (one pooled connection per connection slot)',
};

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

const SMTP_URL_HINT = 'expected an smtp:// or smtps:// URL with a port from 1 to 65535 (special characters of the user name and password percent-encoded)';
const REDIS_URL_HINT = 'expected a redis:// or rediss:// URL with a port from 1 to 65535 (special characters of the user name and password percent-encoded)';

/**
 * Whether a connection URL parses as WHATWG's `URL` with one of `protocols` and a port from 1 to
 * 65535 (or none). nodemailer and ioredis parse it only when they first connect, and refuse it then
 * with a raw `TypeError` whose `input` is the whole URL, password included (nodemailer also falls
 * back to `url.parse`, whose deprecation warning prints the URL to stderr). The URL and the
 * parser's error stay out of the message: both hold the password.
 */
function isConnectionUrl(value: string, protocols: readonly string[], options: { decodable?: boolean } = {}): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (!protocols.includes(url.protocol.toLowerCase())) return false;
  if (url.port !== '' && Number(url.port) < 1) return false; // WHATWG refuses a port over 65535, not 0
  if (options.decodable) {
    // ioredis decodes the user name and password with decodeURIComponent, which throws on a stray `%`.
    try {
      decodeURIComponent(url.username);
      decodeURIComponent(url.password);
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The pool keys mailpacer owns, set in a connection URL's query (`?maxConnections=50`): nodemailer
 * applies a URL's query over every other option, so they would override mailpacer's pool (its own
 * rate limit and requeues back on). Named without quoting the URL, which may hold a password.
 */
function refuseOwnedInQuery(text: string, path: string[], ctx: z.RefinementCtx): void {
  const query = new URL(text).searchParams;
  for (const [key, why] of Object.entries(OWNED_TRANSPORT_KEYS)) {
    if (query.has(key)) ctx.addIssue({ code: 'custom', path, message: `the URL's query sets ${key}, which is not allowed here: ${why}` });
  }
}

/** nodemailer transport: SMTP options (passed through untouched), a connection URL, or any transport object. */
const transportSchema = z.unknown().superRefine((value, ctx) => {
  if (typeof value === 'string') {
    if (!/^smtps?:\/\//i.test(value)) ctx.addIssue({ code: 'custom', message: 'expected an smtp:// or smtps:// URL, SMTP options or a nodemailer transport' });
    else if (!isConnectionUrl(value, ['smtp:', 'smtps:'])) ctx.addIssue({ code: 'custom', message: SMTP_URL_HINT });
    else refuseOwnedInQuery(value, [], ctx);
    return;
  }
  if (!isObject(value)) {
    ctx.addIssue({ code: 'custom', message: 'expected SMTP options (an object with host and port), an smtp:// URL, or a nodemailer transport' });
    return;
  }
  if (typeof value.send === 'function' || typeof value.sendMail === 'function') return; // a transport or transporter
  for (const [key, why] of Object.entries(OWNED_TRANSPORT_KEYS)) {
    if (key in value && value[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `not allowed here: ${why}` });
  }
  if (value.host !== undefined && typeof value.host !== 'string') ctx.addIssue({ code: 'custom', path: ['host'], message: 'expected a host name' });
  if (value.port !== undefined && !(Number.isInteger(value.port) && (value.port as number) > 0 && (value.port as number) < 65536)) {
    ctx.addIssue({ code: 'custom', path: ['port'], message: 'expected a port number from 1 to 65535' });
  }
  if (value.url !== undefined && !(typeof value.url === 'string' && /^smtps?:\/\//i.test(value.url) && isConnectionUrl(value.url, ['smtp:', 'smtps:']))) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: SMTP_URL_HINT });
  } else if (typeof value.url === 'string') refuseOwnedInQuery(value.url, ['url'], ctx);
  if (value.host === undefined && value.service === undefined && value.url === undefined) {
    ctx.addIssue({ code: 'custom', path: ['host'], message: 'expected a host name (or `service`, or `url`)' });
  }
});

export const providerSchema = z
  .object({
    /** nodemailer SMTP options, an `smtp://` URL, or any nodemailer transport. Every key is passed to nodemailer untouched. */
    transport: transportSchema,
    /** Rate windows: one or several, every one must admit a send. @example [{ max: 14, per: '1s' }, { max: 50_000, per: '24h' }] */
    rate: z.union([rateWindowSchema, z.array(rateWindowSchema)]).optional(),
    /** Connections open at once (across every process when Redis is configured). @default 5 */
    maxConnections: positiveInt('a connection count').default(5),
    /** Messages sent on one connection at most before it is replaced (each connection takes 80–100% of it at random, so that they are not all replaced at once). @default 100 */
    maxMessagesPerConnection: positiveInt('a message count').default(100),
    /** Recipients per message (SMTP envelope); larger envelopes are split. @default unlimited */
    maxRecipientsPerMessage: positiveInt('a recipient count').optional(),
  })
  .strict();

const domainList = (what: string) =>
  z.array(z.string().regex(/^[A-Za-z0-9.-]+$/, { error: `expected ${what} such as "gmail.com"` }).transform((d) => d.toLowerCase().replace(/^\.+|\.+$/g, '')));

/** A destination group: receiving-side limits for the recipients of some domains. */
export const destinationSchema = z
  .object({
    /** Recipient domains of the group. @default the built-in group's, for a built-in name; else none @example ['gmail.com', 'googlemail.com'] */
    domains: domainList('a domain').optional(),
    /** MX host suffixes: a custom domain whose MX ends in one of them belongs to the group. @default the built-in group's, for a built-in name; else none @example ['google.com'] */
    mx: domainList('an MX host suffix').optional(),
    /** The group's own rate windows, on top of the provider's. */
    rate: z.union([rateWindowSchema, z.array(rateWindowSchema)]).optional(),
    /** Connections to the group at once, on top of the provider's cap. */
    maxConnections: positiveInt('a connection count').optional(),
  })
  .strict();

export const dnsSchema = z
  .object({
    /** Resolves MX records, as `dns.promises.resolveMx` does (inject one for tests). @default dns.promises.resolveMx */
    resolveMx: z.custom<(domain: string) => Promise<Array<{ exchange: string; priority: number }>>>((value) => typeof value === 'function', { error: 'expected a function like dns.promises.resolveMx' }).optional(),
    /** How long an MX answer (or a failure) is remembered. @default '1h' */
    cacheTtl: duration.default(3_600_000),
  })
  .strict();

export const retrySchema = z
  .object({
    /** Retries after the first attempt. Refused connections and quota pauses do not use them up. @default 8 */
    retries: z.number({ error: 'expected a number of retries (0 or more)' }).int().min(0).default(8),
    /** Lower bound of the backoff. @default '1s' */
    minDelay: duration.default(1_000),
    /** Upper bound of the backoff. @default '15m' */
    maxDelay: duration.default(900_000),
    /** Growth of the backoff per retry. @default 2 */
    factor: z.number({ error: 'expected a backoff factor of at least 1' }).min(1, { error: 'expected a backoff factor of at least 1' }).default(2),
    /** Delay before retrying a greylisted or recipient-throttled message. @default '5m' */
    greylistDelay: duration.default(300_000),
    /**
     * Time after the first attempt past which a message is not retried. Quota pauses
     * (`quota-exceeded`) and waits for a used-up quota window (a `rate` window over a minute) do not
     * count: a message's deadline moves later by each one it waits through. Also the longest a
     * `rate-limited` reply's named delay pauses a lane.
     * @default '6h'
     */
    maxRetryTime: duration.default(21_600_000),
    /**
     * Send again a message whose outcome is unknown: the connection was lost after the whole
     * message went out, so the server may have accepted it. Resending risks a duplicate.
     * @default false
     */
    resendInDoubt: z.boolean({ error: 'expected true or false' }).default(false),
  })
  .strict()
  .refine((retry) => retry.maxDelay >= retry.minDelay, { error: 'maxDelay must not be less than minDelay', path: ['maxDelay'] });

export const adaptiveSchema = z
  .object({
    /** Multiplier on the rate (or connection cap) after a refusal. @default 0.7 */
    decrease: z.number().gt(0, { error: 'expected a number between 0 and 1' }).lt(1, { error: 'expected a number between 0 and 1' }).default(0.7),
    /** Share of the configured rate regained per second of successful sending. @default 0.05 */
    increase: z.number().positive({ error: 'expected a positive share such as 0.05' }).default(0.05),
    /** Lowest share of the configured rate. @default 0.05 */
    minRate: z.number().gt(0, { error: 'expected a number between 0 and 1' }).max(1, { error: 'expected a number between 0 and 1' }).default(0.05),
    /** At most one slow-down per this long. @default '1s' */
    cooldown: duration.default(1_000),
  })
  .strict();

const hookSchema = z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', { error: 'expected a function' }).optional();

export const hooksSchema = z
  .object({ onRetry: hookSchema, onThrottle: hookSchema, onSent: hookSchema, onFailed: hookSchema, onProgress: hookSchema, onError: hookSchema })
  .strict();

/** Anything with ioredis's commands will do: a `Redis` or a `Cluster`. */
const redisSchema = z.unknown().superRefine((value, ctx) => {
  if (value === undefined) return;
  if (typeof value === 'string') {
    if (!/^rediss?:\/\//i.test(value)) ctx.addIssue({ code: 'custom', message: 'expected a redis:// or rediss:// URL, or an ioredis Redis or Cluster instance' });
    else if (!isConnectionUrl(value, ['redis:', 'rediss:'], { decodable: true })) ctx.addIssue({ code: 'custom', message: REDIS_URL_HINT });
    return;
  }
  if (!isObject(value) || typeof value.defineCommand !== 'function') {
    ctx.addIssue({ code: 'custom', message: 'expected a redis:// URL, or an ioredis Redis or Cluster instance' });
  }
});

export const mailerOptionsSchema = z
  .object({
    /** Redis URL, or an ioredis `Redis`/`Cluster`. Without it, limits hold within this process only. */
    redis: redisSchema.optional(),
    /** Prefix of every Redis key; processes that share it share limits. @default 'mailpacer' */
    keyPrefix: z
      .string()
      .min(1, { error: 'expected a non-empty string' })
      .regex(/^[^{}\s]+$/, { error: 'expected no braces or spaces (braces are Redis Cluster hash tags)' })
      .default('mailpacer'),
    /** What sends do while Redis is unreachable: `'wait'` for it, or `'local'`: per-process limits. @default 'wait' */
    onRedisDown: z.enum(['wait', 'local'], { error: 'expected "wait" or "local"' }).default('wait'),
    /** Sending accounts by name. */
    providers: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a provider name of letters, digits, "_", "-" or "."' }), providerSchema)
      .refine((providers) => Object.keys(providers).length > 0, { error: 'expected at least one provider' }),
    /**
     * Receiving-side shaping by recipient domain or MX host. Off until set; once set, the built-in
     * groups (gmail, microsoft, yahoo, icloud) join in unless switched off with `name: false`, and a
     * group of the same name replaces the built-in one.
     */
    destinations: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a group name of letters, digits, "_", "-" or "."' }), z.union([z.literal(false), destinationSchema])).optional(),
    /** MX lookups of destination groups. */
    dns: dnsSchema.default(() => dnsSchema.parse({})),
    retry: retrySchema.default(() => retrySchema.parse({})),
    /** How long a batch's ledger (what was sent) is kept after its last run. @default '7d' */
    ledgerTtl: duration.default(7 * 86_400_000),
    adaptive: adaptiveSchema.default(() => adaptiveSchema.parse({})),
    hooks: hooksSchema.default({}),
  })
  .strict();

/** What users write. */
export type MailerOptionsInput = Omit<z.input<typeof mailerOptionsSchema>, 'hooks'> & { hooks?: MailerHooks };
/** What the code uses: defaults filled in, durations in milliseconds. */
export type MailerConfig = Omit<z.output<typeof mailerOptionsSchema>, 'hooks'> & { hooks: MailerHooks };
export type ProviderConfig = z.output<typeof providerSchema>;
export type ProviderOptions = z.input<typeof providerSchema>;
export type RetryConfig = z.output<typeof retrySchema>;
export type RateWindow = z.input<typeof rateWindowSchema>;
export type DestinationOptions = z.input<typeof destinationSchema>;
export type DestinationConfig = z.output<typeof destinationSchema>;
