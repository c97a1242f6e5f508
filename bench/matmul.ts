// sgemm benchmark: every candidate the CPU backend can run behind matmul (OpenBLAS when built
// with it, the built-in AVX2 kernel, the AVX-512 kernel when the CPU has it), the one selected
// by measurement (src/backend/gemm.ts), and torch.matmul as the peer, in GFLOP/s.
//
//   anvil bench kernels [--quick | --full]
//
// Each candidate is first checked against the first one on the same inputs (the note column
// shows the largest relative difference), then timed (harness.timeIt); the candidates of a
// shape run one right after another, so they see about the same load from other processes.
import { selectGemm } from "../src/backend/gemm.js";
import { loadAddon } from "../src/backend/native.js";
import { runTorch, timeIt, timeWindow, type BenchContext } from "./harness.js";

/** One sgemm problem: out (M, N) = a (M, K) @ op(b), with b stored (N, K) when transB. */
export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transB: boolean;
}

/** Default sizes: a small product, a square one, and the ~30M model's MLP projection (2048 tokens). */
export const DEFAULT_SHAPES: MatmulShape[] = [
  { M: 256, N: 256, K: 256, transB: false },
  { M: 1024, N: 1024, K: 1024, transB: false },
  { M: 2048, N: 1536, K: 512, transB: true },
];
/** --full adds a large square product and an LLM projection: 4096 tokens through a (3072, 1024) weight. */
export const FULL_SHAPES: MatmulShape[] = [
  ...DEFAULT_SHAPES,
  { M: 2048, N: 2048, K: 2048, transB: false },
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

export async function runMatmulBench(ctx: BenchContext, opts: { threads?: number; torch?: boolean } = {}): Promise<void> {
  const { threads = 2, torch = true } = opts;
  const shapes = ctx.quick ? DEFAULT_SHAPES.slice(0, 2) : ctx.full ? FULL_SHAPES : DEFAULT_SHAPES;
  const addon = loadAddon();
  addon.setThreads(threads);
  const selected = selectGemm(addon).selected;
  const names = addon.gemmCandidates();
  const [minTime, maxTime] = timeWindow(ctx);

  for (const s of shapes) {
    const { M, N, K, transB } = s;
    const a = rand(M * K, 1), b = rand(K * N, 2);
    const outs = names.map(() => new Float32Array(M * N));
    names.forEach((n, i) => addon.matmulWith(n, outs[i], a, b, M, N, K, false, transB, false, 1));
    const flops = 2 * M * N * K;
    for (const [i, name] of names.entries()) {
      const diff = maxRelDiff(outs[i], outs[0]);
      if (!(diff < 1e-4)) throw new Error(`${shapeName(s)}: ${name} and ${names[0]} disagree (max relative difference ${diff})`);
      ctx.progress(`${shapeName(s)} ${name}`);
      const seconds = timeIt(() => addon.matmulWith(name, outs[i], a, b, M, N, K, false, transB, false, 1), minTime, maxTime);
      const notes = [name === selected ? "selected for matmul" : "", i > 0 ? `max rel diff vs ${names[0]} ${diff.toExponential(1)}` : ""];
      ctx.row({ name: shapeName(s), impl: `anvil ${name}`, seconds, gflops: flops / seconds / 1e9, note: notes.filter(Boolean).join("; ") || undefined });
    }
  }
  if (torch) {
    ctx.progress("torch.matmul peer");
    for (const r of runTorch("matmul.py", { shapes: shapes.map((s) => [s.M, s.N, s.K, s.transB]), threads, minTime }, threads)) ctx.row(r);
  }
}
