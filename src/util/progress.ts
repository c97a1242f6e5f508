// A one-line progress bar on stderr with live figures (only when stderr is a TTY, so logs
// and pipes stay clean).

export class Progress {
  private start = performance.now();
  private lastDraw = 0;
  constructor(
    readonly label: string,
    readonly total: number,
    readonly enabled: boolean = process.stderr.isTTY ?? false,
  ) {}

  update(done: number, figures: Record<string, number | string> = {}): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    const frac = this.total ? Math.min(1, done / this.total) : 0;
    const width = 24;
    const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "░");
    const elapsed = (now - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : 0;
    const figs = Object.entries(figures)
      .map(([k, v]) => `${k} ${typeof v === "number" ? +v.toPrecision(3) : v}`)
      .join(" ");
    const line = `${this.label} ${bar} ${done}/${this.total} ${fmt(elapsed)}<${fmt(eta)} ${figs}`;
    const cols = process.stderr.columns ?? 120;
    process.stderr.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
  }

  done(): void {
    if (this.enabled) process.stderr.write("\n");
  }
}

function fmt(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}
