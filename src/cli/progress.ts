/**
 * A progress bar for the CLI's long operations (export, import, dlq resubmit --all, large
 * purges): done/total, rate and ETA on one line of stderr, redrawn in place at most every
 * `redrawIntervalMs` (default 100 ms, ~10×/s). Only on a terminal: when stderr is not a TTY, or
 * with --json, every method is a no-op and nothing is written, so pipes and scripts see only the
 * command's result on stdout.
 *
 * The rate is measured over the last `rateWindowMs` (default 5 s) so the ETA follows the
 * current speed rather than the average since the start.
 */

export interface ProgressOptions {
  /** What moves, e.g. "messages" or "bytes" (bytes are shown as KB/MB/GB). */
  unit: 'messages' | 'bytes';
  /** Shown before the bar, e.g. "export orders". */
  label: string;
  /** How many there are in all; without it, no bar or ETA (count and rate only). */
  total?: number | undefined;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Draw even when `stream` is not a TTY (tests). Default: only on a TTY. */
  force?: boolean;
  /** ms clock; default performance.now. */
  now?: () => number;
  /** Minimum time between two redraws, ms. Default 100. */
  redrawIntervalMs?: number;
  /** Window the rate is measured over, ms. Default 5000. */
  rateWindowMs?: number;
}

/** What the bar writes to: process.stderr, or a fake in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
}

export interface Progress {
  /** Adds `n` to what is done. */
  add(n: number): void;
  /** Sets what is done. */
  set(done: number): void;
  /** Sets (or corrects) the total. */
  setTotal(total: number | undefined): void;
  /** The final line (done, elapsed, average rate), then a newline. */
  finish(): void;
  /** Clears the line, e.g. before a failure is printed. */
  clear(): void;
}

const NO_PROGRESS: Progress = Object.freeze({
  add() {},
  set() {},
  setTotal() {},
  finish() {},
  clear() {},
});

/** A bar on stderr when it is a terminal and `json` is not set; otherwise one that does nothing. */
export function progressBar(options: ProgressOptions & { json?: boolean | undefined }): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.json || !(options.force || stream.isTTY === true)) return NO_PROGRESS;
  return new TerminalProgress({ ...options, stream });
}

class TerminalProgress implements Progress {
  private done = 0;
  private total: number | undefined;
  private readonly started: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private readonly samples: { at: number; done: number }[] = [];
  private readonly now: () => number;
  private readonly redrawMs: number;
  private readonly windowMs: number;
  private drawn = false;
  private finished = false;

  constructor(private readonly opts: ProgressOptions & { stream: ProgressStream }) {
    this.now = opts.now ?? (() => performance.now());
    this.redrawMs = opts.redrawIntervalMs ?? 100;
    this.windowMs = opts.rateWindowMs ?? 5000;
    this.total = opts.total;
    this.started = this.now();
    this.samples.push({ at: this.started, done: 0 });
  }

  add(n: number): void {
    this.set(this.done + n);
  }

  set(done: number): void {
    this.done = done;
    this.maybeDraw();
  }

  setTotal(total: number | undefined): void {
    this.total = total;
    this.maybeDraw();
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const elapsedMs = this.now() - this.started;
    const rate = elapsedMs > 0 ? (this.done / elapsedMs) * 1000 : undefined;
    const line = `${this.opts.label}  ${this.amount(this.done)} ${this.opts.unit === 'bytes' ? '' : 'messages '}in ${clock(elapsedMs)}${rate === undefined ? '' : `  ${this.rate(rate)}`}`;
    this.opts.stream.write(`\r${this.fit(line)}\x1b[K\n`);
  }

  clear(): void {
    if (this.drawn && !this.finished) this.opts.stream.write('\r\x1b[K');
    this.finished = true;
  }

  private maybeDraw(): void {
    if (this.finished) return;
    const at = this.now();
    if (at - this.lastDraw < this.redrawMs) return;
    this.lastDraw = at;
    this.samples.push({ at, done: this.done });
    while (this.samples.length > 2 && at - this.samples[1]!.at > this.windowMs) this.samples.shift();
    this.opts.stream.write(`\r${this.fit(this.line(at))}\x1b[K`);
    this.drawn = true;
  }

  /** The rate over the window, per second; undefined until some time passed. */
  private currentRate(at: number): number | undefined {
    const first = this.samples[0]!;
    const ms = at - first.at;
    if (ms < 50) return undefined;
    return ((this.done - first.done) / ms) * 1000;
  }

  private line(at: number): string {
    const rate = this.currentRate(at);
    const parts = [this.opts.label];
    const { total } = this;
    if (total !== undefined && total > 0) {
      const ratio = Math.min(1, this.done / total);
      parts.push(`${bar(ratio, 24)} ${String(Math.floor(ratio * 100)).padStart(3)}%`);
      parts.push(
        `${this.amount(this.done)}/${this.amount(total)}${this.opts.unit === 'bytes' ? '' : ' messages'}`,
      );
    } else parts.push(`${this.amount(this.done)}${this.opts.unit === 'bytes' ? '' : ' messages'}`);
    if (rate !== undefined) parts.push(this.rate(rate));
    if (total !== undefined && rate !== undefined && rate > 0 && this.done < total)
      parts.push(`ETA ${clock(((total - this.done) / rate) * 1000)}`);
    else if (total !== undefined) parts.push('ETA --:--');
    return parts.join('  ');
  }

  private amount(n: number): string {
    return this.opts.unit === 'bytes' ? bytes(n) : Math.round(n).toLocaleString('en-US');
  }

  private rate(perSecond: number): string {
    return this.opts.unit === 'bytes'
      ? `${bytes(perSecond)}/s`
      : `${Math.round(perSecond).toLocaleString('en-US')} msg/s`;
  }

  /** Cut to the terminal's width, so the line never wraps (a wrapped line cannot be redrawn with \r). */
  private fit(line: string): string {
    const width = this.opts.stream.columns;
    return width !== undefined && width > 1 && line.length >= width ? line.slice(0, width - 1) : line;
  }
}

function bar(ratio: number, width: number): string {
  const full = Math.round(ratio * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

function bytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} KB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** m:ss, or h:mm:ss from an hour on. */
export function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
