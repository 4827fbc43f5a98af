import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/cli/csv.js';
import { idOf, isBlank, ListError, recipientOf } from '../../src/cli/list.js';

const rows = (text: string) => parseCsv(text).rows;

describe('recipientOf', () => {
  it('takes one bare address, trimmed', () => {
    expect(recipientOf(rows('email,name\n  Ann@Example.org ,Ann\n')[0]!)).toBe('Ann@Example.org');
  });

  it.each([
    ['two addresses', '"x1@example.net, x2@example.net"', 'row 1 (line 2): the email cell "x1@example.net, x2@example.net" holds 2 addresses: expected one address per row, like ann@example.org'],
    ['two addresses with ;', '"x1@example.net; x2@example.net"', 'holds 2 addresses'],
    ['a header injected after a line break', '"x3@example.net\nBcc: x4@example.net"', 'the email cell "x3@example.net\\nBcc: x4@example.net" holds a line break or a control character'],
    ['a display name', '"Ann <ann@example.org>"', 'the email cell "Ann <ann@example.org>" is not one bare address'],
    ['a group', '"team: ann@example.org;"', 'is not one bare address'],
    ['no @', 'ann.example.org', 'is not one bare address'],
    ['a space inside', '"ann @example.org"', 'is not one bare address'],
  ])('refuses %s', (_, cell, message) => {
    const row = rows(`email,name\n${cell},Ann\n`)[0]!;
    expect(() => recipientOf(row)).toThrow(ListError);
    expect(() => recipientOf(row)).toThrow(message);
  });

  it('refuses an empty email cell in a row that has other values', () => {
    expect(() => recipientOf(rows('email,name\n ,Ann\n')[0]!)).toThrow('row 1 (line 2): the email cell is empty');
  });
});

describe('isBlank', () => {
  it('is true of a row of commas (a spreadsheet\'s empty row) or of spaces', () => {
    expect(rows('email,name\n,\n   \n').map(isBlank)).toEqual([true, true]);
  });

  it('is false of a row with any value', () => {
    expect(rows('email,name\n,Ann\na@x.org,\n').map(isBlank)).toEqual([false, false]);
  });
});

describe('idOf', () => {
  it('lower-cases the address, so that a re-run knows it whatever its case', () => {
    expect(idOf('Ann@Example.ORG')).toBe('ann@example.org');
  });
});
