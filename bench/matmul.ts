// sgemm benchmark: the addon's matmul (OpenBLAS when built with it), its built-in packed
// AVX2/FMA sgemm (matmulBuiltin), and torch.matmul as the peer, in GFLOP/s.
//
//   node dist/bench/matmul.js [--json] [--quick] [--no-torch] [--threads N]
//
// Each implementation is first checked against the other on the same inputs (the note column
// shows the largest relative difference), then timed with Benchmark.js.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadAddon } from "../src/backend/native.js";
import { report, runTorch, timeIt, type BenchRow } from "./harness.js";

/** One sgemm problem: out (M, N) = a (M, K) @ op(b), with b stored (N, K) when transB. */
export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transB: boolean;
}

export interface MatmulBenchOptions {
  /** Threads for OpenMP, OpenBLAS and torch (default 2: the machine's cores). */
  threads?: number;
  /** Shorter timing windows (noisier numbers, a few seconds in all). */
  quick?: boolean;
  /** Run the PyTorch peer (default true; skipped with a warning when torch is missing). */
  torch?: boolean;
  shapes?: MatmulShape[];
}

export const DEFAULT_SHAPES: MatmulShape[] = [
  { M: 256, N: 256, K: 256, transB: false },
  { M: 1024, N: 1024, K: 1024, transB: false },
  { M: 2048, N: 2048, K: 2048, transB: false },
  // An LLM projection: 4096 tokens through a (3072, 1024) nn.Linear weight.
  { M: 4096, N: 3072, K: 1024, transB: true },
];

const shapeName = (s: MatmulShape) => `matmul ${s.M}x${s.N}x${s.K}${s.transB ? " b^T" : ""}`;

function rand(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 4294967296 - 0.5;
  }
  return x;
}

function maxRelDiff(x: Float32Array, y: Float32Array): number {
  let worst = 0, scale = 0;
  for (let i = 0; i < x.length; i++) {
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return worst / (scale || 1);
}

/** Runs the benchmark and returns one row per (shape, implementation). */
export async function runMatmulBench(opts: MatmulBenchOptions = {}): Promise<BenchRow[]> {
  const { threads = 2, quick = false, torch = true, shapes = DEFAULT_SHAPES } = opts;
  const addon = loadAddon();
  addon.setThreads(threads);
  const blas = addon.buildInfo().blas;
  const [minTime, maxTime] = quick ? [0.1, 0.5] : [0.5, 3];
  const rows: BenchRow[] = [];

  for (const s of shapes) {
    const { M, N, K, transB } = s;
    const a = rand(M * K, 1), b = rand(K * N, 2);
    const outLib = new Float32Array(M * N), outOwn = new Float32Array(M * N);
    const impls: [string, (out: Float32Array) => void][] = [
      [`anvil ${blas}`, (out) => addon.matmul(out, a, b, M, N, K, false, transB, false, 1)],
      ["anvil builtin", (out) => addon.matmulBuiltin(out, a, b, M, N, K, false, transB, false, 1)],
    ];
    impls[0][1](outLib);
    impls[1][1](outOwn);
    const diff = maxRelDiff(outOwn, outLib);
    if (!(diff < 1e-4)) throw new Error(`${shapeName(s)}: builtin and ${blas} disagree (max relative difference ${diff})`);
    const flops = 2 * M * N * K;
    for (const [impl, fn] of impls) {
      const out = impl === "anvil builtin" ? outOwn : outLib;
      const seconds = timeIt(() => fn(out), minTime, maxTime);
      rows.push({ name: shapeName(s), impl, seconds, gflops: flops / seconds / 1e9, note: impl === "anvil builtin" ? `max rel diff vs ${blas} ${diff.toExponential(1)}` : undefined });
    }
  }

  if (torch) {
    // The peer script lives next to this file in the source tree; dist/bench/ has no copy.
    const path = [new URL("./torch/matmul.py", import.meta.url), new URL("../../bench/torch/matmul.py", import.meta.url)]
      .map((u) => fileURLToPath(u))
      .find((p) => existsSync(p));
    if (!path) throw new Error("bench/torch/matmul.py not found");
    const peer = runTorch(path, { shapes: shapes.map((s) => [s.M, s.N, s.K, s.transB]), threads, minTime }, threads);
    rows.push(...peer);
  }
  // Group rows by shape for reading.
  const order = shapes.map(shapeName);
  return rows.sort((x, y) => order.indexOf(x.name) - order.indexOf(y.name));
}

async function main(argv: string[]): Promise<void> {
  const t = argv.indexOf("--threads");
  const rows = await runMatmulBench({
    threads: t >= 0 ? Number(argv[t + 1]) : 2,
    quick: argv.includes("--quick"),
    torch: !argv.includes("--no-torch"),
  });
  report("sgemm (GFLOP/s = 2*M*N*K / time)", rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
