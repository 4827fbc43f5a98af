import type { ScriptedReply, ThrottlingSmtpServerOptions } from './types.js';

/** An SMTP reply split into the code and the text that follows it. */
export interface Reply {
  code: number;
  text: string;
}

const LEADING_CODE = /^([2-5]\d\d)(?:[ -]|$)\s*/;

/**
 * Splits `'421 4.7.0 Slow down'` into code and text. An explicit `code` wins over
 * the one written in the text; `fallback` applies when there is neither.
 */
export function parseReply(reply: string, code: number | undefined, fallback: number): Reply {
  const match = LEADING_CODE.exec(reply);
  const text = match ? reply.slice(match[0].length) : reply;
  return { code: code ?? (match ? Number(match[1]) : fallback), text };
}

/**
 * A sliding log of accept times: admits when fewer than `max` times lie within the
 * last `perMs`. Times are kept in a queue that is compacted now and then, so
 * admitting is O(1) amortised at thousands of messages per second.
 */
export class SlidingLog {
  readonly #max: number;
  readonly #perMs: number;
  #times: number[] = [];
  #head = 0;

  constructor(max: number, perMs: number) {
    this.#max = max;
    this.#perMs = perMs;
  }

  /** Whether a message accepted at `now` would stay within the limit. */
  admits(now: number): boolean {
    while (this.#head < this.#times.length && now - this.#times[this.#head]! >= this.#perMs) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
    return this.#times.length - this.#head < this.#max;
  }

  record(now: number): void {
    this.#times.push(now);
  }

  clear(): void {
    this.#times = [];
    this.#head = 0;
  }
}

/** First-try times by recipient address; an address passes once `delayMs` has gone by. */
export class Greylist {
  readonly #delayMs: number;
  readonly #firstTry = new Map<string, number>();

  constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  /** Whether the address is still deferred at `now`; the first call starts its clock. */
  defers(address: string, now: number): boolean {
    const key = address.toLowerCase();
    const first = this.#firstTry.get(key);
    if (first === undefined) {
      this.#firstTry.set(key, now);
      return true;
    }
    return now - first < this.#delayMs;
  }

  clear(): void {
    this.#firstTry.clear();
  }
}

interface Rule {
  matches: (address: string) => boolean;
  reply: Reply;
  at: 'rcpt' | 'data';
  times: number;
  left: number;
}

/** Scripted replies, matched in order; each rule fires at most `times` times. */
export class Script {
  readonly #rules: Rule[];

  constructor(rules: readonly ScriptedReply[]) {
    this.#rules = rules.map((rule) => {
      const times = rule.times ?? Number.POSITIVE_INFINITY;
      return { matches: matcher(rule.match), reply: parseReply(rule.reply, rule.code, rule.code), at: rule.at ?? 'rcpt', times, left: times };
    });
  }

  /** The reply of the first live rule at `at` that matches one of the addresses, using up one firing. */
  fire(at: 'rcpt' | 'data', addresses: readonly string[]): Reply | undefined {
    for (const rule of this.#rules) {
      if (rule.at !== at || rule.left <= 0) continue;
      if (addresses.some(rule.matches)) {
        rule.left--;
        return rule.reply;
      }
    }
    return undefined;
  }

  clear(): void {
    for (const rule of this.#rules) rule.left = rule.times;
  }
}

function matcher(match: ScriptedReply['match']): (address: string) => boolean {
  if (typeof match === 'function') return (address) => match(address);
  if (typeof match === 'string') {
    const wanted = match.toLowerCase();
    return (address) => address.toLowerCase() === wanted;
  }
  return (address) => {
    // A /g or /y regexp keeps state between calls; every test starts from the beginning.
    match.lastIndex = 0;
    return match.test(address);
  };
}

/** mulberry32: a small, fast, seedable generator; good enough for failure rates. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Every option of the server: any other key is a typo (`maxConnection`), which would change nothing. */
const KNOWN_OPTIONS = new Set(['maxConnections', 'rate', 'greylist', 'greylistRecipients', 'transientFailureRate', 'dropConnectionRate', 'dropAfterAcceptRate', 'script', 'auth', 'latencyMs', 'seed']);

/** A count of times or sessions: a whole number from `min`, or `Infinity`. */
const isCount = (value: unknown, min: number): boolean => value === Number.POSITIVE_INFINITY || (Number.isInteger(value) && (value as number) >= min);

/** Fails fast on options that would make the server misbehave silently, naming the option. */
export function validateOptions(options: ThrottlingSmtpServerOptions): void {
  const fail = (path: string, expected: string, value: unknown): never => {
    const shown = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'function' ? 'a function' : value instanceof RegExp ? String(value) : typeof value === 'object' && value !== null ? 'an object' : String(value);
    throw new TypeError(`startThrottlingSmtpServer: options.${path}: expected ${expected}, got ${shown}`);
  };
  if (typeof options !== 'object' || options === null) throw new TypeError(`startThrottlingSmtpServer: options: expected an object, got ${String(options)}`);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new TypeError(`startThrottlingSmtpServer: options.${key}: unknown option (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  const { maxConnections, rate, greylist, greylistRecipients, latencyMs, seed } = options;
  if (maxConnections !== undefined && !isCount(maxConnections, 1)) fail('maxConnections', 'a whole number >= 1 or Infinity', maxConnections);
  if (rate !== undefined) {
    if (!(Number.isInteger(rate.max) && rate.max >= 0)) fail('rate.max', 'an integer >= 0', rate.max);
    if (!(Number.isFinite(rate.perMs) && rate.perMs > 0)) fail('rate.perMs', 'a positive number of milliseconds', rate.perMs);
    if (rate.code !== undefined && ![421, 450, 451].includes(rate.code)) fail('rate.code', '421, 450 or 451', rate.code);
    if (rate.reply !== undefined && typeof rate.reply !== 'string') fail('rate.reply', 'a string', rate.reply);
  }
  if (greylist !== undefined) {
    if (!(Number.isFinite(greylist.delayMs) && greylist.delayMs >= 0)) fail('greylist.delayMs', 'a number of milliseconds >= 0', greylist.delayMs);
    if (greylist.reply !== undefined) {
      if (typeof greylist.reply !== 'string') fail('greylist.reply', 'a string', greylist.reply);
      const { code } = parseReply(greylist.reply, undefined, 451);
      if (code !== 450 && code !== 451) fail('greylist.reply', 'a reply with code 450 or 451 (or none: 451)', greylist.reply);
    }
  }
  if (greylistRecipients !== undefined && typeof greylistRecipients !== 'function') fail('greylistRecipients', 'a function (address) => boolean', greylistRecipients);
  for (const key of ['transientFailureRate', 'dropConnectionRate', 'dropAfterAcceptRate'] as const) {
    const value = options[key];
    if (value !== undefined && !(value >= 0 && value <= 1)) fail(key, 'a probability between 0 and 1', value);
  }
  if (latencyMs !== undefined && !(Number.isFinite(latencyMs) && latencyMs >= 0)) fail('latencyMs', 'a number of milliseconds >= 0', latencyMs);
  if (seed !== undefined && !Number.isFinite(seed)) fail('seed', 'a finite number', seed);
  if (options.script !== undefined && !Array.isArray(options.script)) fail('script', 'an array of rules', options.script);
  options.script?.forEach((rule, i) => {
    const { match } = rule;
    if (!(typeof match === 'string' || typeof match === 'function' || match instanceof RegExp)) fail(`script[${i}].match`, 'an address, a RegExp or a function (address) => boolean', match);
    if (typeof rule.reply !== 'string') fail(`script[${i}].reply`, 'a string', rule.reply);
    if (!(Number.isInteger(rule.code) && rule.code >= 400 && rule.code <= 599)) fail(`script[${i}].code`, 'a 4xx or 5xx reply code', rule.code);
    if (rule.times !== undefined && !isCount(rule.times, 0)) fail(`script[${i}].times`, 'a whole number >= 0 or Infinity', rule.times);
    if (rule.at !== undefined && rule.at !== 'rcpt' && rule.at !== 'data') fail(`script[${i}].at`, "'rcpt' or 'data'", rule.at);
  });
}
