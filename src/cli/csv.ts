import { createReadStream } from 'node:fs';

/**
 * A small RFC 4180 CSV reader and writer: quoted fields (with `""` for a quote), commas,
 * CR LF or LF line ends, line breaks inside quotes, an optional UTF-8 BOM. The first record
 * is the header. Reading streams, so a million-row list costs no more memory than ten rows.
 */

/** A CSV that cannot be read; `line` is the physical line where the bad record starts. */
export class CsvError extends Error {
  override name = 'CsvError' as const;
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

/** One data record: fields by column name (a short record lacks its last columns), its row and line. */
export interface CsvRow {
  fields: Record<string, string>;
  /** Data row number, from 1 (the header is not counted). */
  row: number;
  /** Line of the file where the record starts, from 1. */
  line: number;
}

/** A push parser: feed it text, get complete records back with the line each started on. */
export class CsvParser {
  #field = '';
  #record: string[] = [];
  #quoted = false;
  /** Just saw a `"` inside a quoted field: either the closing quote or the first of `""`. */
  #quoteSeen = false;
  /** The current field began with a quote (text after its closing quote is an error). */
  #wasQuoted = false;
  #pendingCR = false;
  #line = 1;
  #recordLine = 1;
  #started = false;

  push(text: string): Array<{ values: string[]; line: number }> {
    const out: Array<{ values: string[]; line: number }> = [];
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      if (!this.#started) {
        this.#started = true;
        if (ch === '\uFEFF') continue;
      }
      if (this.#pendingCR) {
        this.#pendingCR = false;
        if (ch === '\n') continue; // CR LF is one line end
      }
      if (this.#quoted) {
        if (this.#quoteSeen) {
          this.#quoteSeen = false;
          if (ch === '"') {
            this.#field += '"';
            continue;
          }
          this.#quoted = false; // that was the closing quote; handle ch below
        } else if (ch === '"') {
          this.#quoteSeen = true;
          continue;
        } else {
          // Line breaks inside quotes are part of the field; they still count as lines.
          if (ch === '\r' || (ch === '\n' && !this.#field.endsWith('\r'))) this.#line++;
          this.#field += ch;
          continue;
        }
      }
      if (ch === '"') {
        if (this.#field !== '' || this.#wasQuoted) throw new CsvError(`line ${this.#line}: a quote inside an unquoted field (quote the whole field and double the quote: "a ""b"" c")`, this.#line);
        this.#quoted = true;
        this.#wasQuoted = true;
        continue;
      }
      if (ch === ',') {
        this.#endField();
        continue;
      }
      if (ch === '\r' || ch === '\n') {
        if (ch === '\r') this.#pendingCR = true;
        this.#line++;
        const record = this.#endRecord();
        if (record) out.push(record);
        this.#recordLine = this.#line;
        continue;
      }
      if (this.#wasQuoted) throw new CsvError(`line ${this.#line}: text after a closing quote`, this.#line);
      this.#field += ch;
    }
    return out;
  }

  /** Ends the input: returns the last record if the text did not end with a line break. */
  end(): Array<{ values: string[]; line: number }> {
    if (this.#quoted && !this.#quoteSeen) throw new CsvError(`line ${this.#recordLine}: a quoted field is never closed`, this.#recordLine);
    this.#quoted = false;
    this.#quoteSeen = false;
    const record = this.#endRecord();
    return record ? [record] : [];
  }

  #endField(): void {
    this.#record.push(this.#field);
    this.#field = '';
    this.#wasQuoted = false;
  }

  #endRecord(): { values: string[]; line: number } | undefined {
    // A blank line (nothing at all on it) is not a record.
    if (this.#record.length === 0 && this.#field === '' && !this.#wasQuoted) return undefined;
    this.#endField();
    const values = this.#record;
    this.#record = [];
    return { values, line: this.#recordLine };
  }
}

/** Turns raw records into rows keyed by the header; checks the header and record widths. */
class Rows {
  #header: string[] | undefined;
  #row = 0;

  constructor(
    private readonly required: readonly string[],
    private readonly onHeader?: (header: string[]) => void,
  ) {}

  get header(): string[] | undefined {
    return this.#header;
  }

  take(record: { values: string[]; line: number }): CsvRow | undefined {
    if (!this.#header) {
      this.#header = record.values.map((name) => name.trim());
      const seen = new Set<string>();
      for (const name of this.#header) {
        if (name === '') throw new CsvError(`line ${record.line}: the header has an empty column name`, record.line);
        if (seen.has(name)) throw new CsvError(`line ${record.line}: the header names column "${name}" twice`, record.line);
        seen.add(name);
      }
      for (const name of this.required) {
        if (!seen.has(name)) throw new CsvError(`line ${record.line}: the header has no "${name}" column (columns: ${this.#header.join(', ')})`, record.line);
      }
      this.onHeader?.(this.#header);
      return undefined;
    }
    const header = this.#header;
    if (record.values.length > header.length) {
      throw new CsvError(`line ${record.line}: ${record.values.length} fields, but the header names ${header.length} columns (quote fields that contain commas)`, record.line);
    }
    const fields: Record<string, string> = {};
    record.values.forEach((value, i) => (fields[header[i]!] = value));
    return { fields, row: ++this.#row, line: record.line };
  }

  finish(): void {
    if (!this.#header) throw new CsvError('the file is empty: expected a header row', 1);
  }
}

/** Parses CSV text into its header and rows. */
export function parseCsv(text: string, options: { required?: readonly string[] } = {}): { header: string[]; rows: CsvRow[] } {
  const parser = new CsvParser();
  const rows = new Rows(options.required ?? []);
  const out: CsvRow[] = [];
  for (const record of [...parser.push(text), ...parser.end()]) {
    const row = rows.take(record);
    if (row) out.push(row);
  }
  rows.finish();
  return { header: rows.header!, rows: out };
}

export interface ReadCsvOptions {
  /** Columns the header must have. */
  required?: readonly string[];
  /** Called with the header once it is read, before the first row. */
  onHeader?: (header: string[]) => void;
}

/** Streams the rows of a CSV file (UTF-8). */
export async function* readCsvFile(file: string, options: ReadCsvOptions = {}): AsyncGenerator<CsvRow> {
  const parser = new CsvParser();
  const rows = new Rows(options.required ?? [], options.onHeader);
  for await (const chunk of createReadStream(file, { encoding: 'utf8' })) {
    for (const record of parser.push(chunk as string)) {
      const row = rows.take(record);
      if (row) yield row;
    }
  }
  for (const record of parser.end()) {
    const row = rows.take(record);
    if (row) yield row;
  }
  rows.finish();
}

/** Formats one CSV record, quoting the fields that need it, ended with CR LF (RFC 4180). */
export function formatCsvRecord(values: readonly string[]): string {
  return values.map(quote).join(',') + '\r\n';
}

/** Formats a header and records as CSV text. */
export function formatCsv(header: readonly string[], records: ReadonlyArray<readonly string[]>): string {
  return [header, ...records].map(formatCsvRecord).join('');
}

function quote(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
