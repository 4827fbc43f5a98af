/**
 * Where the CPU time of each contender went, from V8 CPU profiles. Prints self time per message by
 * area (nodemailer, mailpacer, Node internals, GC...), then the functions whose self time per
 * message differs most between the first and the last contender. Two forms:
 *
 * - one profile of an `ab-bursts.ts` run, whose samples are told apart by the bursts' spans (same
 *   process, interleaved, so the machine's drift falls on every contender alike):
 *
 *     AB_WINDOWS=/tmp/w.json node --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx \
 *       bench/ab-bursts.ts 20 2000 factory /abs/path/dist/index.js
 *     node --import tsx bench/profile-split.ts /tmp/prof/<largest>.cpuprofile /tmp/w.json [rows=30]
 *
 * - `--whole <messages>`: whole-process profiles, one per contender (the unthrottled scenario's
 *   child processes run with `--cpu-prof`), every sample counted, start-up and warm-up included,
 *   divided by the messages the process sent:
 *
 *     node --import tsx bench/profile-split.ts --whole 40000 <raw's>.cpuprofile <mailpacer's>.cpuprofile [rows=30]
 *
 *   (`--cpu-prof` also writes a small profile of tsx's loader thread: name the process's largest.)
 *
 * A sample's attribution is statistical: differences of a microsecond or so per message move
 * between runs.
 */
import { readFileSync } from 'node:fs';
import { area, functionKey } from './lib/profile-areas.js';

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

const args = process.argv.slice(2);
const whole = args[0] === '--whole';
const usage = 'usage: profile-split.ts <profile.cpuprofile> <windows.json> [rows], or profile-split.ts --whole <messages> <profile.cpuprofile>... [rows]';
const load = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Profile;

/** Every contender's profile, the sender each sample counts for (`undefined`: none), and the messages it sent. */
let sources: Array<{ profile: Profile; senderAt: (at: number) => number | undefined }>;
let senders: string[];
let messages: number[];
let rows: string;
if (whole) {
  const files = args.slice(2).filter((a) => !/^\d+$/.test(a));
  rows = args.slice(2).find((a) => /^\d+$/.test(a)) ?? '30';
  const count = Number(args[1]);
  if (!(count > 0) || files.length === 0) throw new Error(usage);
  senders = files.map((file) => file.split('/').slice(-2).join('/'));
  messages = files.map(() => count);
  sources = files.map((file, i) => ({ profile: load(file), senderAt: () => i }));
} else {
  const [profileFile, windowsFile] = args;
  rows = args[2] ?? '30';
  if (!profileFile || !windowsFile) throw new Error(usage);
  const windowed = JSON.parse(readFileSync(windowsFile, 'utf8')) as Windows;
  senders = windowed.senders;
  messages = senders.map(() => 0);
  for (const w of windowed.windows) messages[w.sender]! += windowed.burst;
  const spans = [...windowed.windows].sort((a, b) => a.from - b.from);
  let w = 0;
  // Samples come in time order: the spans are walked once.
  const senderAt = (at: number) => {
    while (w < spans.length && spans[w]!.to < at) w++;
    const span = spans[w];
    return span && at >= span.from ? span.sender : undefined;
  };
  sources = [{ profile: load(profileFile), senderAt }];
}

const byFunction = senders.map(() => new Map<string, number>());
const byArea = senders.map(() => new Map<string, number>());
for (const { profile, senderAt } of sources) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i]!;
    const sender = senderAt(at);
    if (sender === undefined) continue;
    const node = nodes.get(profile.samples[i]!)!;
    const name = node.callFrame.functionName || '(anonymous)';
    const { url } = node.callFrame;
    // A sample stands for the time until the next one.
    const micros = profile.timeDeltas[i + 1] ?? 0;
    const key = functionKey(node.callFrame);
    byFunction[sender]!.set(key, (byFunction[sender]!.get(key) ?? 0) + micros);
    const a = area(url, name);
    byArea[sender]!.set(a, (byArea[sender]!.get(a) ?? 0) + micros);
  }
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
