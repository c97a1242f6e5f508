// A one-line progress bar on stderr with live figures. When stderr is not a TTY (a log file, a
// pipe) and the caller did not choose, it writes a plain line every 30 s instead, so a long
// backgrounded run shows signs of life without flooding the log.

export class Progress {
  private start = performance.now();
  private lastDraw = 0;
  /** Plain periodic lines rather than a redrawn bar. */
  private readonly plain: boolean;
  readonly enabled: boolean;
  constructor(
    readonly label: string,
    readonly total: number,
    enabled?: boolean,
    /** The step a resumed run starts from: the ETA is timed on the steps done since. */
    readonly from = 0,
  ) {
    const tty = process.stderr.isTTY ?? false;
    this.plain = !tty && enabled === undefined;
    this.enabled = enabled ?? true;
    if (this.plain) this.lastDraw = this.start;
  }

  update(done: number, figures: Record<string, number | string> = {}): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDraw < (this.plain ? PLAIN_EVERY_MS : 100) && done < this.total) return;
    if (this.plain && done >= this.total && now - this.start < PLAIN_EVERY_MS) return;
    this.lastDraw = now;
    const frac = this.total ? Math.min(1, done / this.total) : 0;
    const width = 24;
    const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "░");
    const elapsed = (now - this.start) / 1000;
    const eta = done > this.from ? (elapsed / (done - this.from)) * (this.total - done) : 0;
    const figs = Object.entries(figures)
      .map(([k, v]) => `${k} ${typeof v === "number" ? +v.toPrecision(3) : v}`)
      .join(" ");
    if (this.plain) {
      process.stderr.write(`${this.label.trim()} ${done}/${this.total} ${fmt(elapsed)}<${fmt(eta)} ${figs}\n`);
      return;
    }
    const line = `${this.label} ${bar} ${done}/${this.total} ${fmt(elapsed)}<${fmt(eta)} ${figs}`;
    const cols = process.stderr.columns ?? 120;
    process.stderr.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
  }

  done(): void {
    if (this.enabled && !this.plain) process.stderr.write("\n");
  }
}

const PLAIN_EVERY_MS = 30_000;

function fmt(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}
