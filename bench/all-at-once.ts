/**
 * Like for like, from saved results: mailpacer's `send()` all at once against nodemailer's own
 * `sendMail` all at once, the same round's two runs, for every unthrottled run kept in
 * bench/results/ (`unthrottled-*.json` and `run.json`). Not a goal of the scenario (its goal compares
 * with nodemailer 64 at a time); the two runs of a pair are minutes apart and not flanked.
 *
 *   npx tsx bench/all-at-once.ts
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('./results/', import.meta.url));
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface Saved {
  source?: { commit?: string };
  results: Array<{ name: string; raw: { rounds: Record<string, Array<{ perSecond: number }>>; ratios: Record<string, number[]> } }>;
}

let faster = 0;
let runs = 0;
for (const file of readdirSync(dir).filter((f) => /^(unthrottled-.*|run)\.json$/.test(f)).sort()) {
  const saved = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Saved;
  const raw = saved.results.find((r) => r.name === 'unthrottled')?.raw;
  const send = raw?.rounds['mailpacer-send'];
  const all = raw?.rounds['nodemailer-all'];
  if (!raw || !send || !all) continue;
  const ratio = median(send.map((run, i) => run.perSecond / all[i]!.perSecond));
  runs++;
  if (ratio > 1) faster++;
  const allToReference = median(raw.ratios['nodemailer-all'] ?? []);
  console.log(`${file.padEnd(32)} ${saved.source?.commit?.slice(0, 7) ?? '?'}  send() ÷ sendMail all at once ${ratio.toFixed(3)}  (sendMail all at once ÷ 64 at a time ${allToReference.toFixed(3)})`);
}
console.log(`mailpacer faster in ${faster} of ${runs} runs`);
