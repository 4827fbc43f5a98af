import { parseDuration } from '../config/duration.js';
import { ConfigError, type ConfigIssue } from '../errors.js';

/** Every option `sendBatch` reads: any other key is a typo (`conurrency`), refused like one in `createMailer`. */
const KNOWN = new Set(['id', 'build', 'route', 'concurrency', 'waveSize', 'waveInterval', 'signal', 'resendInDoubt', 'progressInterval', 'total']);

/** The durations of the options, in milliseconds. */
export interface BatchTimings {
  progressIntervalMs: number;
  waveIntervalMs: number;
}

/**
 * Checks the options of `sendBatch` before anything starts (a `build` that is not a function would
 * otherwise fail every item of the batch, one by one) and reads its durations. Throws one
 * `ConfigError` that names every bad option.
 */
export function parseBatchOptions(options: unknown): BatchTimings {
  if (options === undefined) return { progressIntervalMs: 1_000, waveIntervalMs: 0 };
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError([{ path: 'sendBatch options', message: `expected an object, got ${shown(options)}` }]);
  }
  const o = options as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  const bad = (name: string, message: string) => void issues.push({ path: `sendBatch options.${name}`, message: `${message}, got ${shown(o[name])}` });
  for (const key of Object.keys(o)) if (!KNOWN.has(key)) issues.push({ path: `sendBatch options.${key}`, message: `unknown option (known: ${[...KNOWN].join(', ')})` });
  const given = (name: string) => o[name] !== undefined;
  if (given('id') && (typeof o.id !== 'string' || o.id.length === 0)) bad('id', 'expected a non-empty string');
  for (const name of ['build', 'route']) if (given(name) && typeof o[name] !== 'function') bad(name, 'expected a function');
  for (const name of ['concurrency', 'waveSize']) if (given(name) && !(Number.isInteger(o[name]) && (o[name] as number) >= 1)) bad(name, 'expected a whole number of 1 or more');
  if (given('total') && !(Number.isInteger(o.total) && (o.total as number) >= 0)) bad('total', 'expected a whole number of 0 or more');
  if (given('resendInDoubt') && typeof o.resendInDoubt !== 'boolean') bad('resendInDoubt', 'expected true or false');
  if (given('signal') && !(o.signal instanceof AbortSignal)) bad('signal', 'expected an AbortSignal');
  const duration = (name: string, fallback: number): number => {
    if (!given(name)) return fallback;
    const ms = parseDuration(o[name] as string | number);
    if (ms === undefined) bad(name, 'expected a duration like "1s", "5m", or milliseconds');
    return ms ?? fallback;
  };
  const timings = { progressIntervalMs: duration('progressInterval', 1_000), waveIntervalMs: duration('waveInterval', 0) };
  if (issues.length > 0) throw new ConfigError(issues);
  return timings;
}

/** The `signal` of `send()` options: an `AbortSignal`, when given. */
export function checkSendSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new ConfigError([{ path: 'send options.signal', message: `expected an AbortSignal, got ${shown(signal)}` }]);
  }
}

/** A value as an error shows it: short, and never a whole object. */
function shown(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : `an object (${value.constructor?.name ?? 'no prototype'})`;
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
