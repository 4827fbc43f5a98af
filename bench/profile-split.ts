/**
 * Where the CPU time of each contender of one `ab-bursts.ts` run went, from a V8 CPU profile of
 * that run: samples are told apart by the bursts' spans (same process, interleaved, so the
 * machine's drift falls on every contender alike). Prints self time per message by area
 * (nodemailer, mailpacer, Node internals, GC...), then the functions whose self time per message
 * differs most between the first and the last contender.
 *
 *   AB_WINDOWS=/tmp/w.json node --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx \
 *     bench/ab-bursts.ts 20 2000 factory /abs/path/dist/index.js
 *   node --import tsx bench/profile-split.ts /tmp/prof/<largest>.cpuprofile /tmp/w.json [rows=30]
 *
 * A sample's attribution is statistical: differences of a microsecond or so per message move
 * between runs.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Windows {
  burst: number;
  senders: string[];
  windows: Array<{ sender: number; from: number; to: number }>;
}

const [profileFile, windowsFile, rows = '30'] = process.argv.slice(2);
if (!profileFile || !windowsFile) throw new Error('usage: profile-split.ts <profile.cpuprofile> <windows.json> [rows]');
const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
const { burst, senders, windows } = JSON.parse(readFileSync(windowsFile, 'utf8')) as Windows;

const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const messages = senders.map(() => 0);
for (const w of windows) messages[w.sender]! += burst;

const area = (url: string, name: string): string => {
  if (name.startsWith('(')) return name;
  if (url.includes('nodemailer')) return 'nodemailer';
  if (/\/(dist|src)\/|\/\.tmp\//.test(url)) return 'mailpacer';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url === '' ? 'native' : 'other';
};

const byFunction = senders.map(() => new Map<string, number>());
const byArea = senders.map(() => new Map<string, number>());
const spans = [...windows].sort((a, b) => a.from - b.from);
let at = profile.startTime;
let w = 0;
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i]!;
  while (w < spans.length && spans[w]!.to < at) w++;
  const span = spans[w];
  if (!span || at < span.from) continue;
  const node = nodes.get(profile.samples[i]!)!;
  const name = node.callFrame.functionName || '(anonymous)';
  const { url } = node.callFrame;
  // A sample stands for the time until the next one.
  const micros = profile.timeDeltas[i + 1] ?? 0;
  const key = `${name} ${url.replace(/.*\/(node_modules|dist\w*|src)\//, '$1/')}:${node.callFrame.lineNumber}`;
  byFunction[span.sender]!.set(key, (byFunction[span.sender]!.get(key) ?? 0) + micros);
  const a = area(url, name);
  byArea[span.sender]!.set(a, (byArea[span.sender]!.get(a) ?? 0) + micros);
}

senders.forEach((sender, s) => {
  const busy = [...byArea[s]!].filter(([a]) => a !== '(idle)').reduce((sum, [, v]) => sum + v, 0);
  console.log(`== ${sender}: ${(busy / messages[s]!).toFixed(1)} µs busy per message`);
  for (const [a, v] of [...byArea[s]!].sort((x, y) => y[1] - x[1])) console.log(`${(v / messages[s]!).toFixed(1).padStart(8)}  ${a}`);
});

if (senders.length > 1) {
  const [first, last] = [0, senders.length - 1];
  const keys = new Set([...byFunction[first]!.keys(), ...byFunction[last]!.keys()]);
  const diff = [...keys]
    .filter((key) => !key.startsWith('(idle)'))
    .map((key) => [key, (byFunction[last]!.get(key) ?? 0) / messages[last]! - (byFunction[first]!.get(key) ?? 0) / messages[first]!] as const)
    .sort((x, y) => y[1] - x[1]);
  console.log(`== ${senders[last]} minus ${senders[first]}, µs of self time per message`);
  for (const [key, v] of diff.slice(0, Number(rows))) console.log(`${v.toFixed(2).padStart(7)}  ${key}`);
  console.log('   ...');
  for (const [key, v] of diff.slice(-10)) console.log(`${v.toFixed(2).padStart(7)}  ${key}`);
}
