// Shared benchmark plumbing: Benchmark.js timing, a PyTorch peer run in a child process,
// and output as a table or one JSON object (`--json`).
import Benchmark from "benchmark";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

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

/** Mean seconds per call of fn, by Benchmark.js (minimum `minTime` seconds of samples). */
export function timeIt(fn: () => void, minTime = 0.5, maxTime = 3): number {
  const b = new Benchmark(fn, { minSamples: 3, minTime, maxTime, initCount: 1 });
  b.run({ async: false });
  if (b.error) throw b.error;
  return b.stats.mean;
}

/** Same, for async functions (deferred benchmark). */
export async function timeItAsync(fn: () => Promise<void>, minTime = 0.5, maxTime = 3): Promise<number> {
  return new Promise((resolve, reject) => {
    const b = new Benchmark({
      defer: true,
      minSamples: 3,
      minTime,
      maxTime,
      fn: (d: { resolve(): void }) => {
        fn().then(() => d.resolve(), reject);
      },
      onComplete: () => resolve(b.stats.mean),
      onError: (e: unknown) => reject(e),
    });
    b.run({ async: true });
  });
}

export const PYTHON = process.env.ANVIL_PYTHON ?? "/usr/bin/python3";

let torchChecked: string | null | undefined;
/** null when torch is usable, else the reason it is not. */
export function torchUnavailable(): string | null {
  if (torchChecked !== undefined) return torchChecked;
  if (!existsSync(PYTHON)) return (torchChecked = `${PYTHON} not found`);
  const r = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  torchChecked = r.status === 0 ? null : `PyTorch not importable by ${PYTHON} (apt-get install python3-torch)`;
  return torchChecked;
}

/**
 * Runs a Python benchmark script that prints one JSON array of BenchRow on its last stdout line.
 * Returns [] and warns on stderr when torch is absent.
 */
export function runTorch(script: string, args: Record<string, unknown> = {}, threads = 2): BenchRow[] {
  const why = torchUnavailable();
  if (why) {
    process.stderr.write(`skipping PyTorch peer: ${why}\n`);
    return [];
  }
  const r = spawnSync(PYTHON, [script, JSON.stringify(args)], {
    encoding: "utf8",
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${script} failed:\n${r.stderr}`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as BenchRow[];
}

/** Peak resident memory of this process so far (VmHWM), in bytes. */
export function peakRssBytes(): number {
  try {
    const s = readFileSync("/proc/self/status", "utf8");
    const m = /VmHWM:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function wantJson(argv = process.argv): boolean {
  return argv.includes("--json");
}

function fmtSeconds(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toFixed(1)} us`;
  if (s < 1) return `${(s * 1e3).toFixed(2)} ms`;
  return `${s.toFixed(2)} s`;
}

function fmtBytes(b?: number): string {
  if (b === undefined) return "";
  if (b < 1 << 20) return `${(b / 1024).toFixed(0)} KiB`;
  return `${(b / (1 << 20)).toFixed(1)} MiB`;
}

/** Prints rows as an aligned table (or returns it). */
export function formatTable(rows: BenchRow[]): string {
  const head = ["benchmark", "impl", "time", "GFLOP/s", "GB/s", "peak mem", "note"];
  const body = rows.map((r) => [
    r.name,
    r.impl,
    fmtSeconds(r.seconds),
    r.gflops !== undefined ? r.gflops.toFixed(1) : "",
    r.gbps !== undefined ? r.gbps.toFixed(1) : "",
    fmtBytes(r.peakBytes),
    r.note ?? "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/** Table on stdout, or one JSON object with --json. */
export function report(title: string, rows: BenchRow[], extra: Record<string, unknown> = {}): void {
  if (wantJson()) process.stdout.write(JSON.stringify({ title, ...extra, rows }) + "\n");
  else process.stdout.write(`\n${title}\n${formatTable(rows)}\n`);
}
