/**
 * `npm run bench`: runs the benchmark scenarios, mailpacer beside what a user would otherwise
 * pick, prints one table per scenario with its goals marked PASS/FAIL, and writes
 * `bench/results/run.json` and `bench/results/run.md`.
 *
 *   npm run bench                              every scenario, full sizes (several minutes)
 *   npm run bench -- --quick                   small sizes, a smoke run
 *   npm run bench -- --scenario fleet          one scenario (repeat the flag for more)
 *
 * Scenarios: hidden-capacity, unthrottled, fleet (see bench/scenarios/).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuSample, loadSample, machineInfo, otherCpu, sourceState, treeFingerprint } from './lib/machine.js';
import { redisServerPid } from './lib/redis.js';
import { goalLines, markdownTable, scenarioMarkdown, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { runFleet } from './scenarios/fleet.js';
import { runHiddenCapacity } from './scenarios/hidden-capacity.js';
import { runUnthrottled } from './scenarios/unthrottled.js';

const SCENARIOS: Record<string, (options: ScenarioOptions) => Promise<ScenarioResult>> = {
  'hidden-capacity': runHiddenCapacity,
  unthrottled: runUnthrottled,
  fleet: runFleet,
};

const RESULTS = new URL('./results/', import.meta.url);

/** Above this much CPU taken by other work, on average over the run, the run is marked busy. */
const OTHER_CPU_LIMIT = 0.05;

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: npm run bench -- [--quick] [--scenario ${Object.keys(SCENARIOS).join('|')}]...\n`);
  process.exit(2);
}

function options(): { quick: boolean; scenarios: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ options: { quick: { type: 'boolean', default: false }, scenario: { type: 'string', multiple: true } }, strict: true });
  } catch (error) {
    usage((error as Error).message);
  }
  const wanted = (parsed.values.scenario ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  for (const name of wanted) if (!(name in SCENARIOS)) usage(`unknown scenario ${JSON.stringify(name)}`);
  return { quick: parsed.values.quick ?? false, scenarios: wanted.length > 0 ? wanted : Object.keys(SCENARIOS) };
}

function commandLine(): string {
  const args = process.argv.slice(2).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `tsx bench/run.ts${args ? ` ${args}` : ''}`;
}

async function main(): Promise<void> {
  const { quick, scenarios } = options();
  const runId = `mpbench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const command = commandLine();
  const machine = machineInfo();
  const source = sourceState();
  const loadStart = loadSample();
  const redisPid = await redisServerPid();
  const cpuStart = cpuSample(redisPid);
  const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  log(`${command}: ${scenarios.join(', ')}${quick ? ' (quick)' : ''}; load ${loadStart.loadavg.join(' ')} on ${machine.nproc} CPUs`);

  const results: ScenarioResult[] = [];
  const failures: Array<{ scenario: string; error: string }> = [];
  for (const name of scenarios) {
    try {
      const before = cpuSample(redisPid);
      const result = await SCENARIOS[name]!({ quick, log, runId });
      const other = otherCpu(before, cpuSample(redisPid));
      log(`${name}: other work on the machine took ${other.cpus.toFixed(3)} CPUs on average (${other.parts})`);
      results.push(result);
      process.stdout.write(`\n## ${result.title}\n\n${markdownTable(result.columns, result.rows)}\n\n${goalLines(result.goals).join('\n')}\n`);
    } catch (error) {
      const message = (error as Error)?.stack ?? String(error);
      failures.push({ scenario: name, error: message });
      log(`${name} failed: ${message}`);
    }
  }
  const loadEnd = loadSample();
  const other = otherCpu(cpuStart, cpuSample(redisPid));
  const sourceChanged = treeFingerprint() !== source.fingerprint;

  const goals = results.flatMap((r) => r.goals.map((g) => ({ scenario: r.name, ...g })));
  // The load average counts the benchmark's own processes (and the build that `npm run bench` runs
  // just before), so it cannot say whether anything else ran; the CPU that others took can.
  const busy = !(other.cpus <= OTHER_CPU_LIMIT);
  const warning = busy
    ? Number.isNaN(other.cpus)
      ? 'The CPU time of other work could not be read (/proc is missing), so whether the machine was quiet is unknown: re-run on a machine known to be quiet before these numbers are quoted.'
      : `The machine was busy: other work took ${other.cpus.toFixed(2)} CPUs on average during the run (${other.seconds.toFixed(0)} CPU-seconds; the limit for a quiet run is ${OTHER_CPU_LIMIT}), so these numbers must be re-run on a quiet machine before they are quoted.`
    : undefined;

  const changedWarning = sourceChanged
    ? 'src/ changed while the benchmark ran (edited by other work): the main process measured the code as it was at the start, but child processes started later (fleet children, the fallback receiver) may have loaded newer code. Re-run on a settled tree before quoting.'
    : undefined;
  const report = {
    command,
    quick,
    scenarios,
    runId,
    machine,
    source,
    load: { start: loadStart, end: loadEnd },
    otherWork: { cpus: Math.round(other.cpus * 1000) / 1000, cpuSeconds: Math.round(other.seconds * 10) / 10, limit: OTHER_CPU_LIMIT },
    warning,
    sourceChanged,
    changedWarning,
    results,
    goals,
    failures,
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(new URL('run.json', RESULTS), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(new URL('run.md', RESULTS), markdown(report));

  const passed = goals.filter((g) => g.pass).length;
  process.stdout.write(`\nGoals: ${passed} of ${goals.length} passed${failures.length ? `; ${failures.length} scenario(s) failed to run: ${failures.map((f) => f.scenario).join(', ')}` : ''}.\n`);
  process.stdout.write(`Other work took ${other.cpus.toFixed(3)} CPUs on average (${other.seconds.toFixed(1)} CPU-seconds) beside the benchmark's own processes and Redis; load average ${loadStart.loadavg.join(' ')} at the start, ${loadEnd.loadavg.join(' ')} at the end (${machine.nproc} CPUs).\n`);
  if (warning) process.stdout.write(`WARNING: ${warning}\n`);
  if (changedWarning) process.stdout.write(`WARNING: ${changedWarning}\n`);
  process.stdout.write('Written: bench/results/run.json, bench/results/run.md\n');
  process.exitCode = failures.length > 0 ? 1 : 0;
}

function markdown(report: {
  command: string;
  quick: boolean;
  machine: ReturnType<typeof machineInfo>;
  source: ReturnType<typeof sourceState>;
  load: { start: ReturnType<typeof loadSample>; end: ReturnType<typeof loadSample> };
  otherWork: { cpus: number; cpuSeconds: number; limit: number };
  warning: string | undefined;
  changedWarning: string | undefined;
  results: ScenarioResult[];
  goals: Array<{ scenario: string; contender: string; goal: string; actual: string; pass: boolean }>;
  failures: Array<{ scenario: string; error: string }>;
}): string {
  const { machine, load } = report;
  const lines = [
    '# mailpacer benchmark',
    '',
    `- Command: \`${report.command}\`${report.quick ? ' (quick: small sizes, a smoke run, not figures to quote)' : ''}`,
    `- Machine: ${machine.nproc} CPUs, ${machine.cpuModel}, ${machine.totalMemoryGb} GB, ${machine.platform}`,
    `- Node ${machine.node}; ${machine.redisServer}`,
    `- Code: commit ${report.source.commit}${report.source.modified.length ? `, with uncommitted changes in ${report.source.modified.join(', ')}` : ''} (mailpacer from dist/, which npm run bench builds from this working tree first; the benchmark scripts run through tsx)`,
    `- Date: ${load.start.at} → ${load.end.at}`,
    `- Other work on the machine: ${report.otherWork.cpus} CPUs on average over the run (${report.otherWork.cpuSeconds} CPU-seconds of user, system, interrupt and steal time beside this process, its children and the Redis server; a run above ${report.otherWork.limit} is marked busy)`,
    `- Load average (1/5/15 min): ${load.start.loadavg.join(' / ')} at the start, ${load.end.loadavg.join(' / ')} at the end (it counts the benchmark's own processes and the build just before it)`,
    `- uptime at the start: \`${load.start.uptime}\`; at the end: \`${load.end.uptime}\``,
    '',
  ];
  if (report.warning) lines.push(`> **Warning:** ${report.warning}`, '');
  if (report.changedWarning) lines.push(`> **Warning:** ${report.changedWarning}`, '');
  lines.push('## Goals', '', ...goalLines(report.goals.map((g) => ({ ...g, contender: `${g.scenario}: ${g.contender}` }))), '');
  for (const failure of report.failures) lines.push(`**Scenario ${failure.scenario} failed to run:**`, '', '```', failure.error, '```', '');
  for (const result of report.results) lines.push(scenarioMarkdown(result));
  return `${lines.join('\n')}\n`;
}

await main();
// Anything a contender left behind (timers of an abandoned run) must not keep the process alive.
process.exit();
