import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CsvError, CsvParser, formatCsv, parseCsv, readCsvFile } from '../../src/cli/csv.js';

const values = (text: string) => parseCsv(text).rows.map((r) => r.fields);

describe('parseCsv', () => {
  it('reads the header and keys each row by it', () => {
    const { header, rows } = parseCsv('email,name\na@x.org,Ann\nb@x.org,Bob\n');
    expect(header).toEqual(['email', 'name']);
    expect(rows).toEqual([
      { fields: { email: 'a@x.org', name: 'Ann' }, row: 1, line: 2 },
      { fields: { email: 'b@x.org', name: 'Bob' }, row: 2, line: 3 },
    ]);
  });

  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    expect(values('email,note\r\na@x.org,"Smith, Ann"\r\nb@x.org,"say ""hi"""\r\nc@x.org,"two\r\nlines"\r\n')).toEqual([
      { email: 'a@x.org', note: 'Smith, Ann' },
      { email: 'b@x.org', note: 'say "hi"' },
      { email: 'c@x.org', note: 'two\r\nlines' },
    ]);
  });

  it('takes CRLF, LF and a missing final line break alike, and skips blank lines', () => {
    expect(values('email,n\r\na@x.org,1\n\nb@x.org,2')).toEqual([
      { email: 'a@x.org', n: '1' },
      { email: 'b@x.org', n: '2' },
    ]);
  });

  it('keeps empty fields, quoted or not', () => {
    expect(values('email,a,b\nx@y.org,,""\n')).toEqual([{ email: 'x@y.org', a: '', b: '' }]);
  });

  it('ignores a UTF-8 byte order mark', () => {
    expect(parseCsv('\uFEFFemail\na@x.org\n').header).toEqual(['email']);
  });

  it('counts lines inside quoted fields for the line of the next record', () => {
    expect(parseCsv('email,note\na@x.org,"1\n2\n3"\nb@x.org,x\n').rows[1]).toMatchObject({ row: 2, line: 5 });
  });

  it('leaves out the columns a short row lacks', () => {
    expect(values('email,name,plan\na@x.org,Ann\n')).toEqual([{ email: 'a@x.org', name: 'Ann' }]);
  });

  it('requires the named columns', () => {
    expect(() => parseCsv('mail,name\na,b\n', { required: ['email'] })).toThrow('line 1: the header has no "email" column (columns: mail, name)');
  });

  it.each([
    ['', 'the file is empty: expected a header row'],
    ['email,name,email\n', 'line 1: the header names column "email" twice'],
    ['email,name\na@x.org,Ann,extra\n', 'line 2: 3 fields, but the header names 2 columns'],
    ['email\n"a@x.org\n', 'line 2: a quoted field is never closed'],
    ['email\nab"c@x.org\n', 'line 2: a quote inside an unquoted field'],
    ['email\n"a"b\n', 'line 2: text after a closing quote'],
  ])('rejects %j: %s', (text, message) => {
    expect(() => parseCsv(text)).toThrow(CsvError);
    expect(() => parseCsv(text)).toThrow(message);
  });

  it('parses the same whatever the chunks (a stream may split anywhere)', () => {
    const text = 'email,note\r\na@x.org,"Smith, ""A""\r\nx"\r\nb@x.org,y\r\n';
    for (let size = 1; size < text.length; size++) {
      const parser = new CsvParser();
      const records = [];
      for (let i = 0; i < text.length; i += size) records.push(...parser.push(text.slice(i, i + size)));
      records.push(...parser.end());
      expect(records.map((r) => r.values), `chunks of ${size}`).toEqual([['email', 'note'], ['a@x.org', 'Smith, "A"\r\nx'], ['b@x.org', 'y']]);
    }
  });
});

describe('formatCsv', () => {
  it('quotes what needs it, doubles quotes, ends records with CRLF', () => {
    expect(formatCsv(['id', 'response'], [['a', '550 5.1.1 "User" unknown, sorry'], ['b', 'two\nlines'], ['c', 'plain']])).toBe(
      'id,response\r\na,"550 5.1.1 ""User"" unknown, sorry"\r\nb,"two\nlines"\r\nc,plain\r\n',
    );
  });

  it('reads back what it wrote', () => {
    const rows = [['a@x.org', ' padded ', 'q"uote', 'com,ma', 'cr\r\nlf', '']];
    const { rows: back } = parseCsv(formatCsv(['email', 'b', 'c', 'd', 'e', 'f'], rows));
    expect(Object.values(back[0]!.fields)).toEqual(rows[0]);
  });
});

describe('readCsvFile', () => {
  it('streams the rows of a file and reports the header first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailpacer-csv-'));
    try {
      const file = join(dir, 'list.csv');
      await writeFile(file, 'email,name\r\n' + Array.from({ length: 5_000 }, (_, i) => `u${i}@x.org,"User, ${i}"`).join('\r\n'));
      let header: string[] = [];
      const rows = [];
      for await (const row of readCsvFile(file, { required: ['email'], onHeader: (h) => (header = h) })) rows.push(row);
      expect(header).toEqual(['email', 'name']);
      expect(rows).toHaveLength(5_000);
      expect(rows[4_999]).toEqual({ fields: { email: 'u4999@x.org', name: 'User, 4999' }, row: 5_000, line: 5_001 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
