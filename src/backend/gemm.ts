// Which sgemm runs behind the CPU backend's matmul and fused ops, chosen by measurement.
//
// Candidates (native/cpu/sgemm_*.cpp): "openblas" when the addon was built with it, the
// built-in "avx2" kernel, and "avx512" when the CPU has it. Which one is fastest depends on the
// CPU and the BLAS build (Debian's OpenBLAS 0.3.21 runs at a third of the built-in kernel on an
// AVX-512 Xeon), so at first use each is timed on the shapes of a model's training step and
// the fastest wins. The result is cached per machine in $XDG_CACHE_HOME/anvil/gemm.json (or
// ~/.cache/anvil), keyed by CPU model, addon build, thread count and shapes.
// ANVIL_GEMM=openblas|avx2|avx512 forces a candidate; ANVIL_GEMM=auto (or unset) measures.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, homedir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { tempPathFor } from "../util/atomic.js";
import { addonPath, type NativeAddon } from "./native.js";

/** One product out (M, N) = op(a) (M, K) @ op(b) (K, N). */
export interface GemmShape {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

/**
 * The products of a decoder's training step on `tokens` tokens, MLP up-projection and
 * down-projection: the forward (x @ W^T), the input gradient (dy @ W) and the weight gradient
 * (dy^T @ x). Attention projections have the same form with smaller widths.
 */
export function decoderGemmShapes(c: { hiddenSize: number; intermediateSize: number }, tokens: number): GemmShape[] {
  const [H, I, N] = [c.hiddenSize, c.intermediateSize, tokens];
  return [
    { M: N, N: I, K: H, transA: false, transB: true },
    { M: N, N: H, K: I, transA: false, transB: true },
    { M: N, N: H, K: I, transA: false, transB: false },
    { M: I, N: H, K: N, transA: true, transB: false },
  ];
}

/**
 * What the selection times by default: a ~30M-parameter decoder's step (hidden 512, MLP 1536,
 * 512 tokens per micro-batch) and one vocabulary tile of the fused LM head (256 tokens x 2048
 * vocabulary rows, native/cpu/linear_logprob.cpp).
 */
export const MODEL_GEMM_SHAPES: GemmShape[] = [
  ...decoderGemmShapes({ hiddenSize: 512, intermediateSize: 1536 }, 512),
  { M: 256, N: 2048, K: 512, transA: false, transB: true },
];

export interface GemmChoice {
  /** The candidate behind matmul now. */
  selected: string;
  /** GFLOP/s of each candidate over the shapes (empty when forced by ANVIL_GEMM without measuring). */
  gflops: Record<string, number>;
  /** measured now, read from the cache file, or forced by ANVIL_GEMM. */
  source: "measured" | "cache" | "env";
  /** The cache file (read or written), when one is used. */
  cacheFile?: string;
}

export interface GemmSelectOptions {
  shapes?: GemmShape[];
  /** Directory of the cache file (default $XDG_CACHE_HOME/anvil or ~/.cache/anvil). */
  cacheDir?: string;
  /** Ignore the cache and measure again (the cache is then rewritten). */
  remeasure?: boolean;
  /** Candidate to force, as ANVIL_GEMM (default process.env.ANVIL_GEMM). */
  force?: string;
}

/** Operands for timing: the speed of an sgemm does not depend on the values (none is subnormal). */
function operand(n: number, offset: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((i + offset) % 17) / 17 - 0.5);
}

/**
 * GFLOP/s of each candidate over the shapes: candidates take turns within each round (so a
 * burst of load on a shared machine hits them alike), and each keeps its best round. Runs at
 * least `rounds` rounds, more (up to 4x) while under about a second.
 */
export function measureGemm(native: NativeAddon, shapes: GemmShape[] = MODEL_GEMM_SHAPES, rounds = 3): Record<string, number> {
  const names = native.gemmCandidates();
  const data = shapes.map((s, i) => ({ s, a: operand(s.M * s.K, i), b: operand(s.K * s.N, i + 5), out: new Float32Array(s.M * s.N) }));
  const flops = shapes.reduce((acc, s) => acc + 2 * s.M * s.N * s.K, 0);
  const best: Record<string, number> = Object.fromEntries(names.map((n) => [n, Infinity]));
  const runAll = (name: string) => {
    for (const { s, a, b, out } of data) native.matmulWith(name, out, a, b, s.M, s.N, s.K, s.transA, s.transB, false, 1);
  };
  for (const n of names) runAll(n); // warm-up: packing buffers, thread team, page faults
  const start = performance.now();
  for (let r = 0; r < rounds || (r < 4 * rounds && performance.now() - start < 1000); r++)
    for (const n of names) {
      const t0 = performance.now();
      runAll(n);
      best[n] = Math.min(best[n], (performance.now() - t0) / 1e3);
    }
  return Object.fromEntries(names.map((n) => [n, flops / best[n] / 1e9]));
}

export function gemmCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "anvil");
}

/** What the cached choice depends on: the CPU, the addon build, the thread count, the shapes. */
function cacheKey(native: NativeAddon, shapes: GemmShape[]): string {
  const path = addonPath();
  const st = path ? statSync(path) : null;
  const build = st ? `${st.size}-${Math.round(st.mtimeMs)}` : "unknown";
  const shapeHash = createHash("sha1").update(JSON.stringify(shapes)).digest("hex").slice(0, 10);
  return `${cpus()[0]?.model ?? "unknown cpu"} | addon ${build} | ${native.buildInfo().threads} threads | shapes ${shapeHash}`;
}

type CacheFile = Record<string, { selected: string; gflops: Record<string, number>; measuredAt: string }>;

function readCache(file: string): CacheFile {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as unknown;
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as CacheFile) : {};
  } catch {
    return {}; // missing or unreadable: measure again
  }
}

/** Best effort: a read-only home only costs a measurement per process. */
function writeCache(file: string, cache: CacheFile): void {
  const tmp = tempPathFor(file);
  try {
    writeFileSync(tmp, JSON.stringify(cache, null, 2) + "\n");
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

function fastest(gflops: Record<string, number>): string {
  return Object.entries(gflops).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
}

/**
 * Selects the sgemm behind native.matmul: ANVIL_GEMM when set, else the cached measurement for
 * this machine, else a fresh measurement (about a second), cached. Throws a RangeError for an
 * ANVIL_GEMM value that is not a candidate here.
 */
export function selectGemm(native: NativeAddon, opts: GemmSelectOptions = {}): GemmChoice {
  const names = native.gemmCandidates();
  const force = (opts.force ?? process.env.ANVIL_GEMM ?? "").trim();
  if (force && force !== "auto") {
    if (!names.includes(force)) throw new RangeError(`ANVIL_GEMM=${force} is not an sgemm candidate here; use one of: auto, ${names.join(", ")}`);
    native.setGemm(force);
    return { selected: force, gflops: {}, source: "env" };
  }
  const shapes = opts.shapes ?? MODEL_GEMM_SHAPES;
  const dir = opts.cacheDir ?? gemmCacheDir();
  const file = join(dir, "gemm.json");
  const key = cacheKey(native, shapes);
  const cache = readCache(file);
  const hit = cache[key];
  if (!opts.remeasure && hit && names.includes(hit.selected)) {
    native.setGemm(hit.selected);
    return { selected: hit.selected, gflops: hit.gflops, source: "cache", cacheFile: file };
  }
  const gflops = measureGemm(native, shapes);
  const selected = fastest(gflops);
  native.setGemm(selected);
  try {
    mkdirSync(dir, { recursive: true });
    writeCache(file, { ...readCache(file), [key]: { selected, gflops, measuredAt: new Date().toISOString() } });
  } catch {
    /* no cache directory: measured again next time */
  }
  return { selected, gflops, source: "measured", cacheFile: file };
}

let choice: GemmChoice | null = null;

/** selectGemm once per process (the CPU backend calls it at construction). */
export function ensureGemmSelected(native: NativeAddon): GemmChoice {
  return (choice ??= selectGemm(native));
}
