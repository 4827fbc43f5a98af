/** The machine a run happened on, for the report: results mean little without it. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  node: string;
  redisServer: string;
  platform: string;
  totalMemoryGb: number;
}

export function machineInfo(): MachineInfo {
  return {
    nproc: os.availableParallelism(),
    cpuModel: cpuModel(),
    node: process.version,
    redisServer: tryRun('redis-server', ['-v']),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    totalMemoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** The code measured: other work may be changing src/ while the benchmark runs. */
export interface SourceState {
  commit: string;
  /** Files under src/ that differ from the commit (git status), at the start of the run. */
  modified: string[];
  /** A hash of every file under src/: compared at the end, it tells whether src/ changed during the run. */
  fingerprint: string;
}

/** SHA-1 over the paths and contents of every file under `dir`, in a stable order. */
export function treeFingerprint(dir = 'src'): string {
  const hash = createHash('sha1');
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else hash.update(full).update('\0').update(readFileSync(full)).update('\0');
    }
  };
  try {
    walk(dir);
  } catch {
    return 'unavailable';
  }
  return hash.digest('hex').slice(0, 12);
}

export function sourceState(): SourceState {
  const modified = tryRun('git', ['--no-optional-locks', 'status', '--porcelain', '--', 'src'])
    .split('\n')
    // "XY path" lines; the output as a whole was trimmed, so the first one may have lost its leading space.
    .map((line) => line.replace(/^\s*\S{1,2}\s+/, '').trim())
    .filter(Boolean);
  return { commit: tryRun('git', ['rev-parse', '--short', 'HEAD']), modified, fingerprint: treeFingerprint() };
}

export interface LoadSample {
  at: string;
  /** 1, 5 and 15 minute load averages, as `uptime` prints them. */
  loadavg: [number, number, number];
  uptime: string;
}

export function loadSample(): LoadSample {
  const [one, five, fifteen] = os.loadavg() as [number, number, number];
  const round = (n: number) => Math.round(n * 100) / 100;
  return { at: new Date().toISOString(), loadavg: [round(one), round(five), round(fifteen)], uptime: tryRun('uptime', []) };
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function tryRun(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', timeout: 5_000 }).trim();
  } catch (error) {
    return `unavailable (${(error as Error).message.split('\n')[0]})`;
  }
}
