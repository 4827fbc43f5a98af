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

/**
 * CPU time on the whole machine, and the part of it that was this benchmark's own: this process,
 * the children it has reaped (receivers, fleet processes) and the Redis server it drives. The
 * difference over a run is the CPU that other work took, which the load average cannot tell apart
 * from the benchmark's own load (a CPU-bound run on 2 CPUs shows a load of about 1.5 by itself).
 */
export interface CpuSample {
  at: number;
  /**
   * Busy CPU time of every CPU together, µs: user, nice, system, irq, softirq and steal (time the
   * hypervisor gave to other machines). Interrupt time is in: the kernel charges the loopback
   * traffic that the benchmark's processes handle themselves to their own time as well, and leaving
   * it out made the benchmark's own time exceed the machine's.
   */
  machineMicros: number;
  /** This process and its reaped children, µs. */
  ownMicros: number;
  /** The Redis server's, µs (0 when it is not on this machine or not readable). */
  redisMicros: number;
}

const TICK_MICROS = 1e6 / 100; // USER_HZ is 100 on Linux

function statFields(path: string): string[] | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // The fields after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU of a local process so far, in microseconds (10 ms resolution), from /proc. */
export function processCpuMicros(pid: number | undefined): number | undefined {
  const fields = pid === undefined ? undefined : statFields(`/proc/${pid}/stat`);
  return fields ? (Number(fields[11]) + Number(fields[12])) * TICK_MICROS : undefined;
}

export function cpuSample(redisPid: number | undefined): CpuSample {
  let machineMicros = Number.NaN;
  try {
    const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).map(Number);
    machineMicros = (user! + nice! + system! + irq! + softirq! + steal!) * TICK_MICROS;
  } catch {
    // not Linux: the other-work figure is unavailable
  }
  const own = statFields('/proc/self/stat');
  // utime, stime, cutime, cstime
  const ownMicros = own ? (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) * TICK_MICROS : Number.NaN;
  const redisMicros = processCpuMicros(redisPid) ?? 0;
  return { at: performance.now(), machineMicros, ownMicros, redisMicros };
}

/** What other work took between two samples, in CPUs on average (0.25 = a quarter of one CPU); NaN where /proc is missing. */
export function otherCpu(start: CpuSample, end: CpuSample): { cpus: number; seconds: number; parts: string } {
  const machine = end.machineMicros - start.machineMicros;
  const own = end.ownMicros - start.ownMicros;
  const redis = end.redisMicros - start.redisMicros;
  const other = machine - own - redis;
  const elapsed = (end.at - start.at) * 1000;
  const s = (micros: number) => (micros / 1e6).toFixed(1);
  return { cpus: Math.max(0, other) / elapsed, seconds: Math.max(0, other) / 1e6, parts: `machine ${s(machine)} s − own ${s(own)} s − Redis ${s(redis)} s over ${s(elapsed)} s` };
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
