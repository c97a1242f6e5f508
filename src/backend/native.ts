// Loads the C++ addon and describes it. Users never call the addon directly: the CPU backend
// (cpu.ts) wraps it after validating arguments in TypeScript.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

type F32 = Float32Array;
type I32 = Int32Array;
type F32n = Float32Array | null;

export interface BuildInfo {
  blas: string;
  openmp: boolean;
  threads: number;
  avx2: boolean;
  cudaBuilt: boolean;
}

/** What the lazily loaded CUDA library (libanvil_cuda.so next to the addon) reports. */
export interface CudaInfo {
  /** The addon was compiled with nvcc present, so libanvil_cuda.so was built. */
  built: boolean;
  /** libanvil_cuda.so was dlopen()ed (loading does not need a driver; running does). */
  loaded: boolean;
  /** Path tried for the library (null when not built). */
  library: string | null;
  /** Usable CUDA devices (0 without a driver or a GPU). */
  devices: number;
  deviceNames: string[];
  /** Why CUDA cannot be used (load error, driver error 35, no device), or null. */
  error: string | null;
}

/** The addon's functions, as registered by native/addon/*.cpp (argument order = C++ order). */
export interface NativeAddon {
  buildInfo(): BuildInfo;
  /** Loads the CUDA library on first call; never throws. The cuda_* ops are typed in cuda.ts. */
  cudaInfo(): CudaInfo;
  setThreads(n: number): void;

  add(out: F32, a: F32, b: F32, n: number): void;
  accumulate(dst: F32, src: F32, alpha: number, n: number): void;
  scale(t: F32, alpha: number, n: number): void;
  sumSquares(out: F32, t: F32, n: number): void;

  embeddingForward(out: F32, ids: I32, table: F32, N: number, C: number, V: number): void;
  embeddingBackward(dtable: F32, dout: F32, ids: I32, N: number, C: number, V: number): void;
  matmul(out: F32, a: F32, b: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void;
  /** Same as matmul, always the built-in packed AVX2/FMA sgemm (for tests and benchmarks against BLAS). */
  matmulBuiltin(out: F32, a: F32, b: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void;
  /** Same as matmul, on a worker thread: resolves when done (for embedding apps). */
  matmulAsync(out: F32, a: F32, b: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): Promise<void>;
  biasAdd(out: F32, bias: F32, N: number, C: number): void;
  biasBackward(dbias: F32, dout: F32, N: number, C: number): void;
  rmsnormForward(out: F32, rstd: F32, inp: F32, weight: F32, N: number, C: number, eps: number): void;
  rmsnormBackward(dinp: F32, dweight: F32, dout: F32, inp: F32, weight: F32, rstd: F32, N: number, C: number): void;
  ropeForward(out: F32, inp: F32, pos: I32, N: number, nh: number, hd: number, theta: number): void;
  ropeBackward(dinp: F32, dout: F32, pos: I32, N: number, nh: number, hd: number, theta: number): void;
  attentionForward(out: F32, lse: F32, q: F32, k: F32, v: F32, B: number, T: number, nh: number, nkv: number, hd: number): void;
  attentionBackward(dq: F32, dk: F32, dv: F32, dout: F32, q: F32, k: F32, v: F32, out: F32, lse: F32, B: number, T: number, nh: number, nkv: number, hd: number): void;
  attentionDecode(out: F32, q: F32, kCache: F32, vCache: F32, pos: I32, B: number, Tq: number, S: number, nh: number, nkv: number, hd: number): void;
  kvWrite(cache: F32, x: F32, pos: I32, B: number, Tq: number, S: number, nkv: number, hd: number): void;
  swigluForward(out: F32, gate: F32, up: F32, n: number): void;
  swigluBackward(dgate: F32, dup: F32, dout: F32, gate: F32, up: F32, n: number): void;
  crossEntropyForward(loss: F32, logits: F32, targets: I32, N: number, V: number): void;
  crossEntropyBackward(dlogits: F32, dloss: F32, logits: F32, targets: I32, N: number, V: number): void;
  gatherRows(out: F32, inp: F32, idx: I32, M: number, N: number, C: number): void;
  adamw(param: F32, grad: F32, m: F32, v: F32, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;

  logprobFromLogits(logprob: F32, entropy: F32, logits: F32, targets: I32, N: number, V: number, temperature: number): void;
  sample(ids: I32, logits: F32, seeds: Uint32Array, B: number, V: number, temperature: number, topK: number, topP: number, minP: number, greedy: boolean): void;
  linearLogprobForward(logprob: F32, entropy: F32, lse: F32, hidden: F32, weight: F32, targets: I32, N: number, H: number, V: number, temperature: number): void;
  linearLogprobBackward(dhidden: F32, dweight: F32, dlogprob: F32, dentropy: F32, hidden: F32, weight: F32, targets: I32, lse: F32, entropy: F32, N: number, H: number, V: number, temperature: number): void;
  /** kl: 0 = k1, 1 = k2, 2 = k3. aggregation: 0 token-mean, 1 seq-mean-token-mean, 2 seq-mean-token-sum, 3 dr-grpo. */
  grpoLoss(dlogprob: F32, dentropy: F32, stats: F32, logprob: F32, oldLogprob: F32, refLogprob: F32n, rolloutLogprob: F32n, entropy: F32n, advantages: F32, mask: F32, B: number, T: number, epsLow: number, epsHigh: number, dualClip: number, beta: number, kl: number, entropyCoef: number, tisCap: number, aggregation: number, maxCompletionLength: number): void;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Candidate addon paths: the cmake-js / node-gyp output, from src/ or from dist/src/. */
function addonCandidates(): string[] {
  const roots = [join(here, "..", ".."), join(here, "..", "..", "..")];
  const out: string[] = [];
  if (process.env.ANVIL_ADDON) out.push(process.env.ANVIL_ADDON);
  for (const r of roots) out.push(join(r, "build", "Release", "anvil.node"));
  return out;
}

let cached: NativeAddon | null = null;
let loadError: Error | null = null;

/** The addon, or throws an Error saying how to build it. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (loadError) throw loadError;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const p of addonCandidates()) {
    if (!existsSync(p)) {
      tried.push(`${p} (missing)`);
      continue;
    }
    try {
      cached = require(p) as NativeAddon;
      return cached;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message})`);
    }
  }
  loadError = new Error(
    `anvil: the native addon is not built. Run \`npm run build:native\` (cmake-js) or ` +
      `\`npm run build:gyp\` (node-gyp). Tried:\n  ${tried.join("\n  ")}`,
  );
  throw loadError;
}
