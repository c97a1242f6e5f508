// Benchmark rows and how they are shown: streamed as they are measured (one table line per row
// on stdout, a progress line on stderr), or collected into one JSON object (`--json`).
// The suites themselves live in bench/ (they spawn PyTorch peers and child processes);
// the CLI finds them at run time (src/cli/commands/bench.ts).

export interface BenchRow {
  /** What was measured, e.g. "matmul 1024x1024x1024". */
  name: string;
  /** Implementation, e.g. "anvil fused", "anvil unfused", "torch 1.13". */
  impl: string;
  /** Mean seconds per call. */
  seconds: number;
  /** Optional throughput figures. */
  gflops?: number;
  gbps?: number;
  /** Peak extra memory in bytes, when measured. */
  peakBytes?: number;
  /** Free-form note: floors, ratios, skipped reasons. */
  note?: string;
}

/** What a suite gets: the size mode, and where to report each row the moment it is measured. */
export interface BenchContext {
  /** Large sizes (the issue-scale shapes, many minutes). */
  full: boolean;
  /** Tiny sizes and short timing: a smoke run of about a minute. */
  quick: boolean;
  /** Suite-specific command-line flags (e.g. memory's --models), as parsed. */
  args: Record<string, unknown>;
  /** A measured row. */
  row(r: BenchRow): void;
  /** What is being measured now (shown on stderr until the next row). */
  progress(what: string): void;
}

export interface BenchSuite {
  /** Suite name on the command line (kernels, backends, model). */
  suite: string;
  /** Section title, e.g. "matmul". */
  title: string;
  run(ctx: BenchContext): Promise<void>;
}

export interface BenchSection {
  suite: string;
  title: string;
  rows: BenchRow[];
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "-";
  if (s < 1e-3) return `${(s * 1e6).toFixed(1)} us`;
  if (s < 1) return `${(s * 1e3).toFixed(2)} ms`;
  return `${s.toFixed(2)} s`;
}

function fmtBytes(b?: number): string {
  if (b === undefined) return "";
  if (b < 1 << 20) return `${(b / 1024).toFixed(0)} KiB`;
  return `${(b / (1 << 20)).toFixed(1)} MiB`;
}

const HEAD = ["benchmark", "impl", "time", "GFLOP/s", "GB/s", "peak mem", "note"];

function cells(r: BenchRow): string[] {
  return [
    r.name,
    r.impl,
    fmtSeconds(r.seconds),
    r.gflops !== undefined ? r.gflops.toFixed(1) : "",
    r.gbps !== undefined ? r.gbps.toFixed(1) : "",
    fmtBytes(r.peakBytes),
    r.note ?? "",
  ];
}

function line(c: string[], widths: number[]): string {
  return c.map((x, i) => x.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
}

/** Rows as an aligned table (widths fitted to the rows). */
export function formatTable(rows: BenchRow[]): string {
  const body = rows.map(cells);
  const widths = HEAD.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [line(HEAD, widths), line(widths.map((w) => "-".repeat(w)), widths), ...body.map((b) => line(b, widths))].join("\n");
}

/** Fixed widths for rows printed one by one, before the rest are known. */
const STREAM_WIDTHS = [48, 22, 10, 8, 7, 9, 0];

export function formatHeader(): string {
  return [line(HEAD, STREAM_WIDTHS), line(STREAM_WIDTHS.slice(0, -1).map((w) => "-".repeat(w)).concat("----"), STREAM_WIDTHS)].join("\n");
}

export function formatRow(r: BenchRow): string {
  return line(cells(r), STREAM_WIDTHS);
}

export interface RunBenchOptions {
  full?: boolean;
  quick?: boolean;
  /** Print nothing on stdout until the end, then one JSON object. */
  json?: boolean;
  /** Suite-specific flags, handed to every suite as ctx.args. */
  args?: Record<string, unknown>;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream & { isTTY?: boolean };
}

/**
 * Runs the suites in order. Without json each section prints its header and then every row on
 * stdout as it is measured; stderr carries a progress line (elapsed time, what is running),
 * redrawn in place on a terminal. With json stdout gets one object at the end
 * ({ sections, seconds }) and the rows go to stderr as they come.
 */
export async function runBench(suites: BenchSuite[], opts: RunBenchOptions = {}): Promise<{ sections: BenchSection[]; seconds: number }> {
  const out = opts.stdout ?? process.stdout, err = opts.stderr ?? process.stderr;
  const tty = Boolean(err.isTTY);
  const start = performance.now();
  const elapsed = () => `[${((performance.now() - start) / 1e3).toFixed(1).padStart(6)} s]`;
  let pending = false; // a progress line is on screen (terminal only)
  const clear = () => {
    if (pending) err.write("\r\x1b[K");
    pending = false;
  };
  const sections: BenchSection[] = [];
  for (const s of suites) {
    const section: BenchSection = { suite: s.suite, title: s.title, rows: [] };
    sections.push(section);
    if (!opts.json) out.write(`\n${s.suite}: ${s.title}\n${formatHeader()}\n`);
    const ctx: BenchContext = {
      full: opts.full ?? false,
      quick: opts.quick ?? false,
      args: opts.args ?? {},
      row(r) {
        section.rows.push(r);
        clear();
        if (opts.json) err.write(`${elapsed()} ${s.suite}/${s.title}: ${formatRow(r)}\n`);
        else out.write(formatRow(r) + "\n");
      },
      progress(what) {
        clear();
        const text = `${elapsed()} ${s.suite}/${s.title}: ${what} ...`;
        if (tty) {
          err.write(text);
          pending = true;
        } else err.write(text + "\n");
      },
    };
    await s.run(ctx);
    clear();
  }
  const seconds = (performance.now() - start) / 1e3;
  if (opts.json) out.write(JSON.stringify({ sections, seconds }) + "\n");
  else err.write(`bench: done in ${seconds.toFixed(1)} s\n`);
  return { sections, seconds };
}
