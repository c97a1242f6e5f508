// Shared benchmark plumbing: timing with a bounded wall time, and a PyTorch peer run in a child process.
// Rows and their output (streamed table or one JSON object) are src/bench/report.ts.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type { BenchContext, BenchRow } from "../src/bench/report.js";
import type { BenchRow } from "../src/bench/report.js";

/** Time windows per size mode (seconds): [minTime, maxTime] per measurement. */
export function timeWindow(ctx: { quick: boolean; full: boolean }): [number, number] {
  return ctx.quick ? [0.1, 0.5] : ctx.full ? [0.5, 3] : [0.25, 1];
}

/**
 * Median seconds per call of fn: one warm-up call, then calls until `minTime` seconds and at
 * least 3 calls, or until `maxTime` seconds. Stopping is checked after every call, so a burst
 * of load from other processes can stretch a measurement by one call, not by a calibrated batch
 * of them (Benchmark.js ran one 4 ms row for 112 s on this shared machine that way). The median
 * ignores the calls that such a burst slowed down.
 */
export function timeIt(fn: () => void, minTime = 0.5, maxTime = 3): number {
  fn();
  const times: number[] = [];
  let total = 0;
  while ((total < minTime || times.length < 3) && !(total >= maxTime && times.length >= 1)) {
    const t0 = performance.now();
    fn();
    const dt = (performance.now() - t0) / 1e3;
    times.push(dt);
    total += dt;
  }
  return median(times);
}

/** Same, for async functions. */
export async function timeItAsync(fn: () => Promise<void>, minTime = 0.5, maxTime = 3): Promise<number> {
  await fn();
  const times: number[] = [];
  let total = 0;
  while ((total < minTime || times.length < 3) && !(total >= maxTime && times.length >= 1)) {
    const t0 = performance.now();
    await fn();
    const dt = (performance.now() - t0) / 1e3;
    times.push(dt);
    total += dt;
  }
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
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
