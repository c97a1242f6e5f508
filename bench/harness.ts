// Shared benchmark plumbing: Benchmark.js timing and a PyTorch peer run in a child process.
// Rows and their output (streamed table or one JSON object) are src/bench/report.ts.
import Benchmark from "benchmark";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type { BenchContext, BenchRow } from "../src/bench/report.js";
import type { BenchRow } from "../src/bench/report.js";

/** Benchmark.js time windows per size mode (seconds): [minTime, maxTime] per measurement. */
export function timeWindow(ctx: { quick: boolean; full: boolean }): [number, number] {
  return ctx.quick ? [0.1, 0.5] : ctx.full ? [0.5, 3] : [0.25, 1];
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

/** bench/torch/<file>: next to this module in the sources, or back in the source tree from dist/bench. */
function torchScript(file: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "torch", file), join(here, "..", "..", "bench", "torch", file)];
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
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
 * Runs bench/torch/<file>, a Python script that prints one JSON array of BenchRow on its last
 * stdout line. Returns [] and warns on stderr when torch is absent.
 */
export function runTorch(file: string, args: Record<string, unknown> = {}, threads = 2): BenchRow[] {
  const script = torchScript(file);
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
