import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { mailerOptionsSchema, type MailerConfig } from './schema.js';

/** Validates `createMailer` options: defaults filled in, or a `ConfigError` naming every bad option. */
export function parseOptions(input: unknown): MailerConfig {
  if (typeof input !== 'object' || input === null) {
    throw new ConfigError([{ path: '', message: 'expected an options object with at least `providers`' }]);
  }
  const result = mailerOptionsSchema.safeParse(input);
  if (!result.success) throw new ConfigError(result.error.issues.flatMap(explainUnion).map(toConfigIssue));
  return result.data as MailerConfig;
}

/**
 * A union (`rate`: one window or a list) reports "invalid input" with the issues of every branch.
 * The branch whose type matched is the one the user meant: report its issues instead.
 */
function explainUnion(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [issue];
  const meant = issue.errors.filter((branch) => !branch.every((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
  if (meant.length !== 1) return [issue];
  return meant[0]!.flatMap((inner) => explainUnion({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue));
}

function toConfigIssue(issue: z.core.$ZodIssue): ConfigIssue {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    // Name the unknown key itself, so that a typo points at the line to fix.
    const keys = issue.keys.map((key) => formatPath([...issue.path, key]));
    return { path: keys.join(', '), message: `unknown option${keys.length > 1 ? 's' : ''}` };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return { path, message: `required, ${lowerFirst(issue.message.replace(/^Invalid input: /, ''))}` };
  }
  return { path, message: lowerFirst(issue.message.replace(/^Invalid input: /, '')) };
}

/** `['providers', 'ses', 'rate', 0, 'per']` → `providers.ses.rate[0].per` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

const lowerFirst = (text: string): string => text.charAt(0).toLowerCase() + text.slice(1);
