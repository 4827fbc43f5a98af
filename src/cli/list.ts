import { addresses } from '../message.js';
import type { CsvRow } from './csv.js';

/**
 * The rows of a mailing list as `mailpacer send` reads them: each row is one recipient, whose
 * `email` cell must hold exactly one bare address (`ann@example.org`). Anything else (two
 * addresses, a display name, a line break that would make a header of the rest) is refused before
 * anything is sent: sent as it is, nodemailer would deliver to other people than the cell names.
 */

/** A row that cannot be sent to; found by the first pass over the list, before anything is sent. */
export class ListError extends Error {
  override name = 'ListError' as const;
}

/** A row with nothing in it but commas and spaces (`,,` as a spreadsheet writes an empty row): skipped. */
export const isBlank = (row: CsvRow): boolean => Object.values(row.fields).every((value) => value.trim() === '');

/** The row's address: its `email` cell, trimmed, checked to be exactly one bare address. */
export function recipientOf(row: CsvRow): string {
  const cell = row.fields.email ?? '';
  const address = cell.trim();
  if (address === '') throw new ListError(`${place(row)}: the email cell is empty (every row needs one address; a row with no value at all is skipped)`);
  const found = addresses(address);
  if (found.length === 1 && found[0] === address) return address;
  const why =
    found.length > 1
      ? `holds ${found.length} addresses`
      : /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(address)
        ? 'holds a line break or a control character'
        : 'is not one bare address';
  throw new ListError(`${place(row)}: the email cell ${quoted(cell)} ${why}: expected one address per row, like ann@example.org`);
}

/** A recipient's idempotency key in the batch: the address, lower-cased. */
export const idOf = (address: string): string => address.toLowerCase();

const place = (row: CsvRow): string => `row ${row.row} (line ${row.line})`;

/** The cell on one line, quoted, escapes showing line breaks; cut short when long. */
function quoted(cell: string): string {
  const text = JSON.stringify(cell);
  return text.length > 80 ? `${text.slice(0, 76)}..."` : text;
}
