import { describe, expect, test } from 'vitest';
import { countByMessageId, countPerWindow, maxInWindow, missingIds } from '../../src/testing/records.js';
import type { AcceptedMessage } from '../../src/testing/types.js';

function accepted(at: number, messageId: string | undefined): AcceptedMessage {
  return { at, messageId, from: 'a@example.com', to: ['b@example.org'], size: 10, connectionId: 'c1' };
}

describe('countByMessageId', () => {
  test('counts unique ids, duplicates and messages without an id', () => {
    const counts = countByMessageId([accepted(1, '<a@x>'), accepted(2, '<b@x>'), accepted(3, '<a@x>'), accepted(4, '<a@x>'), accepted(5, undefined)]);
    expect(counts).toMatchObject({ unique: 2, duplicates: 2, withoutId: 1 });
    expect([...counts.byMessageId]).toEqual([
      ['<a@x>', 3],
      ['<b@x>', 1],
    ]);
  });
});

describe('countByMessageId by recipient', () => {
  test('counts a recipient given a message twice, not a message whose recipients came in parts', () => {
    const part = (at: number, to: string[]): AcceptedMessage => ({ ...accepted(at, '<m@x>'), to });
    expect(countByMessageId([part(1, ['a@x.org']), part(2, ['b@x.org', 'c@x.org'])])).toMatchObject({ unique: 1, duplicates: 0 });
    expect(countByMessageId([part(1, ['a@x.org', 'b@x.org']), part(2, ['B@x.org', 'c@x.org']), part(3, ['a@x.org', 'b@x.org'])])).toMatchObject({ unique: 1, duplicates: 3 });
  });
});

describe('missingIds', () => {
  test('returns the expected ids never accepted, with or without angle brackets, in order', () => {
    const records = [accepted(1, '<a@x>'), accepted(2, '<b@x>')];
    expect(missingIds(records, ['c@x', '<a@x>', 'b@x', '<d@x>'])).toEqual(['c@x', '<d@x>']);
    expect(missingIds(records, new Set<string>())).toEqual([]);
  });
});

describe('countPerWindow', () => {
  test('counts in consecutive windows starting at the first acceptance', () => {
    expect(countPerWindow([1000, 1100, 1999, 2000, 4500], 1000)).toEqual([3, 1, 0, 1]);
  });

  test('is empty without acceptances', () => {
    expect(countPerWindow([], 1000)).toEqual([]);
  });
});

describe('maxInWindow', () => {
  test('slides the window over the accept times', () => {
    // 900..1800 holds 3; the fixed windows [0,1000) and [1000,2000) hold 2 and 2.
    expect(maxInWindow([0, 900, 1100, 1800, 3000], 1000)).toBe(3);
    expect(countPerWindow([0, 900, 1100, 1800, 3000], 1000)).toEqual([2, 2, 0, 1]);
  });

  test('treats the window as half-open, like the rate limit', () => {
    expect(maxInWindow([0, 1000], 1000)).toBe(1);
    expect(maxInWindow([0, 999], 1000)).toBe(2);
    expect(maxInWindow([], 1000)).toBe(0);
  });

  test('rejects a window that is not a positive number', () => {
    expect(() => maxInWindow([1], 0)).toThrow(RangeError);
  });
});
