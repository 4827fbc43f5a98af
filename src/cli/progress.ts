import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../index.js';
import { count, duration, type Output } from './format.js';

export type { Output };

/** Shows a batch's progress: a live bar on a terminal, a line every few seconds otherwise (logs, CI). */
export interface ProgressView {
  /** How often the view wants `progress` events (the batch's `progressInterval`), in milliseconds. */
  readonly intervalMs: number;
  /** A live bar, redrawn in place: other output to the terminal goes through `log`. */
  readonly live: boolean;
  update(event: ProgressEvent): void;
  /** Prints a line above the bar (or between progress lines). */
  log(line: string): void;
  /** Draws the last state and ends the bar. */
  stop(): void;
}

export interface ProgressViewOptions {
  /** Messages in the batch, when known; otherwise the items taken so far stand in. */
  total: number | undefined;
  stream?: Output;
  /** @default the stream's `isTTY` */
  tty?: boolean;
  /** Without a terminal, the least time between two progress lines. @default 2000 */
  lineEveryMs?: number;
}

export function createProgressView(options: ProgressViewOptions): ProgressView {
  const stream = options.stream ?? process.stdout;
  return (options.tty ?? stream.isTTY === true) ? barView(options.total, stream) : lineView(options.total, stream, options.lineEveryMs ?? 2_000);
}

const done = (e: ProgressEvent) => e.sent + e.failed + e.skipped + e.inDoubt;

function barView(total: number | undefined, stream: Output): ProgressView {
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: ' {bar} {percentage}% {value}/{total} | sent {sent} failed {failed} | {rate}/s | ETA {etaText}',
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let stopped = false;
  const bar = bars.create(total ?? 0, 0, { sent: 0, failed: 0, rate: '0.0', etaText: '-' });
  return {
    intervalMs: 250,
    live: true,
    update(e) {
      bar.setTotal(total ?? Math.max(e.total, 1));
      bar.update(done(e), { sent: count(e.sent), failed: count(e.failed), rate: e.ratePerSecond.toFixed(1), etaText: eta(e.etaMs) });
    },
    log: (line) => bars.log(`${line}\n`),
    stop() {
      if (stopped) return;
      stopped = true;
      bars.update(); // flushes lines logged since the last redraw; stop() alone drops them
      bars.stop();
    },
  };
}

function lineView(total: number | undefined, stream: Output, everyMs: number): ProgressView {
  let last: ProgressEvent | undefined;
  let printedAt = 0;
  let printed: ProgressEvent | undefined;
  const print = (e: ProgressEvent) => {
    const of = total ?? e.total;
    const pct = of > 0 ? ` (${Math.floor((done(e) / of) * 100)}%)` : '';
    const left = e.etaMs === undefined ? '' : `  ETA ${eta(e.etaMs)}`;
    stream.write(`progress: ${count(done(e))}/${count(of)}${pct}  sent ${count(e.sent)}  failed ${count(e.failed)}  ${e.ratePerSecond.toFixed(1)} msg/s${left}\n`);
    printed = e;
    printedAt = Date.now();
  };
  return {
    intervalMs: 1_000,
    live: false,
    update(e) {
      last = e;
      if (Date.now() - printedAt >= everyMs) print(e);
    },
    log: (line) => stream.write(`${line}\n`),
    stop() {
      if (last && last !== printed) print(last);
    },
  };
}

const eta = (ms: number | undefined): string => (ms === undefined ? '-' : ms < 1_000 ? (ms === 0 ? '0s' : '<1s') : duration(ms));
