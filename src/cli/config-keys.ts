import { adaptiveSchema, hooksSchema, mailerOptionsSchema, providerSchema, rateWindowSchema, retrySchema } from '../config/schema.js';

// The options known at each level of the config, read from the schema (the one source of them).
const LEVELS: Array<[RegExp, readonly string[]]> = [
  [/^$/, Object.keys(mailerOptionsSchema.shape)],
  [/^providers\.[^.]+$/, Object.keys(providerSchema.shape)],
  [/^providers\.[^.]+\.rate(\[\d+\])?$/, Object.keys(rateWindowSchema.in.shape)],
  [/^retry$/, Object.keys(retrySchema.shape)],
  [/^adaptive$/, Object.keys(adaptiveSchema.shape)],
  [/^hooks$/, Object.keys(hooksSchema.shape)],
];

/** For an unknown option's path (`providers.smtp.maxConection`), the known option it is likely a typo of. */
export function suggestKey(path: string): string | undefined {
  const dot = path.lastIndexOf('.');
  const parent = dot < 0 ? '' : path.slice(0, dot);
  const key = path.slice(dot + 1);
  const known = LEVELS.find(([pattern]) => pattern.test(parent))?.[1] ?? [];
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance <= Math.max(2, Math.floor(name.length / 4)) && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
