import type { AcceptedCounts, AcceptedMessage } from './types.js';

/**
 * Counts by Message-ID over accepted messages, for lost/duplicate checks. A duplicate is a
 * recipient given a message it already had: one message sent in parts (recipients refused for now
 * at `RCPT TO`, then sent again in a transaction of their own) is not one.
 */
export function countByMessageId(accepted: readonly AcceptedMessage[]): AcceptedCounts {
  const byMessageId = new Map<string, number>();
  const delivered = new Set<string>();
  let withoutId = 0;
  let duplicates = 0;
  for (const message of accepted) {
    if (message.messageId === undefined) {
      withoutId++;
      continue;
    }
    byMessageId.set(message.messageId, (byMessageId.get(message.messageId) ?? 0) + 1);
    for (const recipient of message.to) {
      const key = `${message.messageId}\n${recipient.toLowerCase()}`;
      if (delivered.has(key)) duplicates++;
      else delivered.add(key);
    }
  }
  return { unique: byMessageId.size, duplicates, withoutId, byMessageId };
}

/** The expected ids that no accepted message carries, compared without angle brackets. */
export function missingIds(accepted: readonly AcceptedMessage[], expectedIds: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const message of accepted) {
    if (message.messageId !== undefined) seen.add(bare(message.messageId));
  }
  const missing: string[] = [];
  for (const id of expectedIds) {
    if (!seen.has(bare(id))) missing.push(id);
  }
  return missing;
}

function bare(id: string): string {
  const trimmed = id.trim();
  return trimmed.startsWith('<') && trimmed.endsWith('>') ? trimmed.slice(1, -1) : trimmed;
}

/** Counts of accept times in consecutive windows of `windowMs` from the first one. */
export function countPerWindow(times: readonly number[], windowMs: number): number[] {
  assertWindow(windowMs);
  if (times.length === 0) return [];
  const sorted = [...times].sort((a, b) => a - b);
  const first = sorted[0]!;
  const last = sorted[sorted.length - 1]!;
  const counts = new Array<number>(Math.floor((last - first) / windowMs) + 1).fill(0);
  for (const at of sorted) {
    const index = Math.floor((at - first) / windowMs);
    counts[index] = (counts[index] ?? 0) + 1;
  }
  return counts;
}

/**
 * The most accept times within any half-open window `[t, t + windowMs)`, by two
 * pointers over the sorted times. This is the same window the rate limit keeps.
 */
export function maxInWindow(times: readonly number[], windowMs: number): number {
  assertWindow(windowMs);
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

function assertWindow(windowMs: number): void {
  if (!(Number.isFinite(windowMs) && windowMs > 0)) {
    throw new RangeError(`windowMs: expected a positive number of milliseconds, got ${String(windowMs)}`);
  }
}
