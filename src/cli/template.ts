/**
 * Message templates: `{{field}}` placeholders filled from a CSV row. A template file may start
 * with a `Subject: ...` line (itself a template), followed by an optional blank line, then the body.
 * In an HTML template the values are HTML-escaped, so a row cannot inject markup.
 */

/** A placeholder without a value, or a template that cannot be used with the list. */
export class TemplateError extends Error {
  override name = 'TemplateError' as const;
}

export interface Template {
  /** The `Subject:` line's text, when the file has one. */
  subject: string | undefined;
  body: string;
  /** Send the body as HTML (and escape values) rather than plain text. */
  html: boolean;
}

/** Where a row came from, for error messages. */
export interface RowPlace {
  row: number;
  line?: number;
}

const PLACEHOLDER = /\{\{\s*([^{}]+?)\s*\}\}/g;
const SUBJECT_LINE = /^subject:[ \t]*(.*?)[ \t]*(?:\r?\n|$)/i;

/** Splits a template file into its subject line (if any) and body. */
export function parseTemplate(text: string, options: { html: boolean }): Template {
  const match = SUBJECT_LINE.exec(text.replace(/^\uFEFF/, ''));
  if (!match) return { subject: undefined, body: text.replace(/^\uFEFF/, ''), html: options.html };
  const rest = text.replace(/^\uFEFF/, '').slice(match[0].length);
  return { subject: match[1]!, body: rest.replace(/^[ \t]*\r?\n/, ''), html: options.html };
}

/** The field names a template text uses, in order of first use. */
export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}

/** Fills every `{{field}}`; a field the row does not have is an error naming the field and the row. */
export function render(text: string, fields: Readonly<Record<string, string>>, place: RowPlace, options: { html?: boolean } = {}): string {
  return text.replace(PLACEHOLDER, (_, name: string) => {
    const value = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (value === undefined) throw new TemplateError(`${describe(place)}: missing field "${name}" (used as {{${name}}} in the template)`);
    return options.html ? escapeHtml(value) : value;
  });
}

/** Checks, before anything is sent, that every placeholder names a column of the list. */
export function checkColumns(texts: readonly string[], columns: readonly string[]): void {
  const known = new Set(columns);
  for (const name of texts.flatMap(placeholders)) {
    if (!known.has(name)) throw new TemplateError(`the template uses {{${name}}}, but the list has no "${name}" column (columns: ${columns.join(', ')})`);
  }
}

function describe(place: RowPlace): string {
  return `row ${place.row}${place.line === undefined ? '' : ` (line ${place.line})`}`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}
