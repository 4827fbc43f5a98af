/**
 * What a scenario hands back to `bench/run.ts`, and how it is printed: one table per scenario,
 * the goals beside it marked PASS or FAIL, and notes on how it was run.
 */

/** One cell value: numbers are formatted by the column, `null` prints as a dash. */
export type Cell = string | number | boolean | null;

export interface Column {
  key: string;
  label: string;
  /** Digits after the point for numbers. @default 0 */
  digits?: number;
}

export type Row = Record<string, Cell>;

/** A goal and how one contender did against it. */
export interface Goal {
  contender: string;
  /** The goal as stated, e.g. "every message delivered once, goodput >= 0.85 R". */
  goal: string;
  /** The figures it was judged on, e.g. "lost 0, dup 0, goodput 0.91". */
  actual: string;
  pass: boolean;
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** How the scenario was set up: the receiver, sizes, contenders' settings. */
  setup: string[];
  columns: Column[];
  rows: Row[];
  goals: Goal[];
  /** What to know when reading the numbers. */
  notes: string[];
  durationMs: number;
  /** Anything else worth keeping in run.json (per-round figures, raw server stats). */
  raw?: unknown;
}

export interface ScenarioOptions {
  quick: boolean;
  /** Progress lines, to stderr so that stdout stays the report. */
  log: (line: string) => void;
  /** Unique per run: Redis key prefixes and Bottleneck ids start with it, so runs never mix. */
  runId: string;
}

export function formatCell(value: Cell, digits = 0): string {
  if (value === null) return '–';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return String(value);
    return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  return value;
}

/** A GitHub-flavoured Markdown table: numbers right-aligned, the first column left-aligned. */
export function markdownTable(columns: readonly Column[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((column) => formatCell(row[column.key] ?? null, column.digits)));
  const widths = columns.map((column, i) => Math.max(column.label.length, 3, ...cells.map((line) => line[i]!.length)));
  const numeric = columns.map((column) => rows.some((row) => typeof row[column.key] === 'number'));
  const pad = (text: string, i: number) => (numeric[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const header = `| ${columns.map((column, i) => pad(column.label, i)).join(' | ')} |`;
  const rule = `|${widths.map((width, i) => (numeric[i] ? `${'-'.repeat(width + 1)}:` : `:${'-'.repeat(width + 1)}`)).join('|')}|`;
  const body = cells.map((line) => `| ${line.map(pad).join(' | ')} |`);
  return [header, rule, ...body].join('\n');
}

export function goalLines(goals: readonly Goal[]): string[] {
  return goals.map((g) => `- **${g.pass ? 'PASS' : 'FAIL'}** ${g.contender}: ${g.goal} — ${g.actual}`);
}

/** A scenario as Markdown: title, setup, table, goals, notes. */
export function scenarioMarkdown(result: ScenarioResult): string {
  const parts = [`## ${result.title}`, '', ...result.setup.map((line) => `- ${line}`), '', markdownTable(result.columns, result.rows), ''];
  if (result.goals.length > 0) parts.push('Goals:', '', ...goalLines(result.goals), '');
  if (result.notes.length > 0) parts.push('Notes:', '', ...result.notes.map((line) => `- ${line}`), '');
  parts.push(`(scenario took ${(result.durationMs / 1000).toFixed(1)} s)`, '');
  return parts.join('\n');
}
