// A progress bar in the diffusers/tqdm shape: `label  42% |#####     | 420/1000 [01:03<01:27, 6.6 it/s] loss=0.031`.
// On a TTY it redraws one line; elsewhere (CI, logs, pipes) it prints a plain line at most every
// `intervalMs`; `quiet` silences it.

export interface ProgressOptions {
  total: number;
  label?: string;
  quiet?: boolean;
  /** start count (resumed runs) */
  initial?: number;
  stream?: NodeJS.WriteStream;
  intervalMs?: number;
}

const clock = (s: number) => {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
};

export class Progress {
  private count: number;
  private readonly start = performance.now();
  private readonly initial: number;
  private lastPrint = 0;
  private info = '';
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;

  constructor(private readonly opts: ProgressOptions) {
    this.count = this.initial = opts.initial ?? 0;
    this.stream = opts.stream ?? process.stderr;
    // DISTILLKAC_STDERR_TTY: stderr reaches a terminal through bin/distillkac.mjs, which drops Dawn's warnings
    this.tty = !!this.stream.isTTY || (this.stream === process.stderr && !!process.env.DISTILLKAC_STDERR_TTY);
  }

  /** iterations per second since this bar started */
  get rate(): number {
    const secs = (performance.now() - this.start) / 1000;
    return secs > 0 ? (this.count - this.initial) / secs : 0;
  }

  update(count: number, info: Record<string, number | string> = {}): void {
    if (this.lastPrint === Infinity) return;
    this.count = count;
    const parts = Object.entries(info).map(([k, v]) => `${k}=${typeof v === 'number' ? (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4 ? v.toExponential(3) : v.toPrecision(4)) : v}`);
    if (parts.length) this.info = parts.join(' ');
    const now = performance.now();
    const interval = this.tty ? 100 : (this.opts.intervalMs ?? 10_000);
    if (count < this.opts.total && now - this.lastPrint < interval) return;
    this.lastPrint = now;
    this.render(count >= this.opts.total);
    if (count >= this.opts.total) this.lastPrint = Infinity;
  }

  line(): string {
    const { total, label } = this.opts;
    const frac = total > 0 ? Math.min(1, this.count / total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const rate = this.rate;
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = rate > 0 ? (total - this.count) / rate : Infinity;
    const speed = rate >= 1 || rate === 0 ? `${rate.toFixed(2)} it/s` : `${(1 / rate).toFixed(2)} s/it`;
    return `${label ? `${label} ` : ''}${String(Math.floor(frac * 100)).padStart(3)}% |${'#'.repeat(filled)}${' '.repeat(width - filled)}| ${this.count}/${total} [${clock(elapsed)}<${clock(eta)}, ${speed}]${this.info ? ` ${this.info}` : ''}`;
  }

  private render(final: boolean): void {
    if (this.opts.quiet) return;
    if (this.tty) this.stream.write(`\r\x1b[2K${this.line()}${final ? '\n' : ''}`);
    else this.stream.write(`${this.line()}\n`);
  }

  /** Print the final state (once). */
  done(): void {
    if (this.lastPrint !== Infinity) this.render(true);
    this.lastPrint = Infinity;
  }
}
