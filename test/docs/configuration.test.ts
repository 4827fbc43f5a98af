import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BatchOptions } from '../../src/batch/batch.js';
import { parseDuration } from '../../src/config/duration.js';
import { mailerOptionsSchema } from '../../src/config/schema.js';

// docs/configuration.md is checked against the zod schema, the single source of options and
// defaults: every option has a table row (`| \`retry.minDelay\` | type | default | ... |`), every
// row names a real option, and every default is the one the schema fills in.

const DOC = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const BATCH_HEADING = /^## `sendBatch` options$/m;

/** How an option is written in the doc for a record's entries: `providers.<name>`, `destinations.<group>`. */
const PLACEHOLDERS: Record<string, string> = { providers: '<name>', destinations: '<group>' };
/** The key each placeholder stands for in the sample options below. */
const SAMPLE_KEYS: Record<string, string> = { '<name>': 'p', '<group>': 'g' };

type Kind = 'required' | 'optional' | 'default' | 'entry';
interface Option {
  path: string;
  segments: string[];
  kind: Kind;
}

interface ZodDef {
  type: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, unknown>;
  valueType?: unknown;
  options?: unknown[];
  element?: unknown;
}

const def = (schema: unknown): ZodDef => (schema as { _zod: { def: ZodDef } })._zod.def;

/** Strips optional, default and pipe (the input side: what users write); says which wrapper came first. */
function unwrap(schema: unknown): { base: unknown; kind: Exclude<Kind, 'entry'> } {
  let kind: Exclude<Kind, 'entry'> | undefined;
  let current = schema;
  for (;;) {
    const d = def(current);
    if (d.type === 'optional' || d.type === 'nullable') kind ??= 'optional';
    else if (d.type === 'default' || d.type === 'prefault') kind ??= 'default';
    else if (d.type !== 'pipe' && d.type !== 'readonly' && d.type !== 'catch') return { base: current, kind: kind ?? 'required' };
    current = d.type === 'pipe' ? d.in : d.innerType;
  }
}

/** The options under a schema: object keys; a record's entry; through unions and arrays. */
function children(base: unknown, parent: string | undefined): Array<{ key: string; schema: unknown; entry: boolean }> {
  const d = def(base);
  switch (d.type) {
    case 'object':
      return Object.entries(d.shape ?? {}).map(([key, schema]) => ({ key, schema, entry: false }));
    case 'record':
      return [{ key: PLACEHOLDERS[parent ?? ''] ?? '<key>', schema: d.valueType, entry: true }];
    case 'union':
      return (d.options ?? []).flatMap((option) => children(unwrap(option).base, parent));
    case 'array':
      return children(unwrap(d.element).base, parent);
    default:
      return [];
  }
}

function walk(schema: unknown, segments: string[], kind: Kind, out: Map<string, Option>): Map<string, Option> {
  const { base, kind: own } = unwrap(schema);
  if (segments.length > 0 && !out.has(segments.join('.'))) out.set(segments.join('.'), { path: segments.join('.'), segments, kind: kind === 'entry' ? 'entry' : own });
  for (const child of children(base, segments.at(-1))) walk(child.schema, [...segments, child.key], child.entry ? 'entry' : 'required', out);
  return out;
}

const OPTIONS = [...walk(mailerOptionsSchema, [], 'required', new Map()).values()];

/** The smallest valid options that reach `option`, parsed: defaults filled in as `createMailer` sees them. */
function parsedValue(option: Option): unknown {
  const input: Record<string, unknown> & { providers: Record<string, Record<string, unknown>> } = { providers: { p: { transport: { host: 'h' } } } };
  const [top, , field] = option.segments;
  let owner: Record<string, unknown> | undefined = top === 'providers' ? input.providers.p : undefined;
  if (top === 'destinations' && option.segments.length > 2) {
    owner = {};
    input.destinations = { g: owner };
  }
  // A rate window's own fields need a window to exist.
  if (owner && field === 'rate' && option.segments.length > 3) owner.rate = { max: 10, per: '1s' };
  let value: unknown = mailerOptionsSchema.parse(input);
  for (const segment of option.segments) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[SAMPLE_KEYS[segment] ?? segment];
  }
  return value;
}

/** Table rows whose first cell is a code span: option → its cells. */
function rows(markdown: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (!match) continue;
    // Cells are separated by pipes that are not escaped (`\|` inside a type).
    const cells = line.slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined).split(/(?<!\\)\|/).map((cell) => cell.trim());
    found.set(match[1]!, cells);
  }
  return found;
}

/** The value of the first code span of a cell (`'1s'`, `8`, `false`, `[]`, `50_000`), if it is a literal. */
function literal(cell: string): { value: unknown } | undefined {
  const code = /`([^`]+)`/.exec(cell)?.[1];
  if (code === undefined) return undefined;
  const json = code.replace(/(\d)_(?=\d)/g, '$1').replace(/^'(.*)'$/, '"$1"');
  try {
    return { value: JSON.parse(json) };
  } catch {
    return undefined;
  }
}

function sameDefault(documented: unknown, actual: unknown): boolean {
  if (typeof documented === 'string' && typeof actual === 'number') return parseDuration(documented) === actual;
  return JSON.stringify(documented) === JSON.stringify(actual);
}

const headingAt = DOC.search(BATCH_HEADING);
const MAILER_ROWS = rows(headingAt === -1 ? DOC : DOC.slice(0, headingAt));
const BATCH_ROWS = rows(headingAt === -1 ? '' : DOC.slice(headingAt));

// Every key of BatchOptions, checked by the compiler both ways: a new option fails the typecheck here.
const BATCH_OPTIONS = {
  id: true,
  build: true,
  route: true,
  concurrency: true,
  waveSize: true,
  waveInterval: true,
  signal: true,
  resendInDoubt: true,
  progressInterval: true,
  total: true,
} as const satisfies Record<keyof BatchOptions<unknown>, true>;

describe('docs/configuration.md', () => {
  it('finds the options of the schema (the walk itself works)', () => {
    const paths = OPTIONS.map((o) => o.path);
    expect(paths).toEqual(expect.arrayContaining(['redis', 'providers.<name>.transport', 'providers.<name>.rate.burst', 'destinations.<group>.mx', 'dns.cacheTtl', 'retry.minDelay', 'adaptive.cooldown', 'hooks.onRetry', 'ledgerTtl']));
    expect(OPTIONS.length).toBeGreaterThan(40);
  });

  it('has a table row for every option of createMailer', () => {
    const missing = OPTIONS.map((o) => o.path).filter((path) => !MAILER_ROWS.has(path));
    expect(missing).toEqual([]);
  });

  it('documents no option that the schema does not have', () => {
    const known = new Set(OPTIONS.map((o) => o.path));
    expect([...MAILER_ROWS.keys()].filter((path) => !known.has(path))).toEqual([]);
  });

  it('states every default as the schema fills it in', () => {
    const wrong: string[] = [];
    for (const option of OPTIONS) {
      const cell = MAILER_ROWS.get(option.path)?.[2];
      if (cell === undefined || option.kind === 'entry') continue;
      const actual = parsedValue(option);
      if (option.kind === 'required') {
        if (!/^required\b/i.test(cell)) wrong.push(`${option.path}: required, documented as "${cell}"`);
        continue;
      }
      if (actual === undefined) {
        if (!cell.startsWith('—')) wrong.push(`${option.path}: no default, documented as "${cell}" (start the cell with "—")`);
        continue;
      }
      // An object of defaults (retry, adaptive, dns): its fields have rows of their own.
      if (typeof actual === 'object' && actual !== null && !Array.isArray(actual)) continue;
      const documented = literal(cell);
      if (!documented || !sameDefault(documented.value, actual)) wrong.push(`${option.path}: default ${JSON.stringify(actual)}, documented as "${cell}"`);
    }
    expect(wrong).toEqual([]);
  });

  it('has a table row for every sendBatch option, and no other', () => {
    expect([...BATCH_ROWS.keys()].sort()).toEqual(Object.keys(BATCH_OPTIONS).sort());
  });
});
