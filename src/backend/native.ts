// Loads the C++ addon and describes it. Users never call the addon directly: the CPU backend
// (cpu.ts) wraps it after validating arguments in TypeScript.
import { createRequire } from "node:module";
import type { AddonOps } from "./addon-backend.js";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

type F32 = Float32Array;

export interface BuildInfo {
  blas: string;
  openmp: boolean;
  threads: number;
  avx2: boolean;
  /** sgemm candidates usable on this CPU with this build (see src/backend/gemm.ts). */
  gemmCandidates: string[];
  /** Vector ISAs of the softmax kernels (softmax, log-prob, sampling) usable here: "avx2", "avx512". */
  simdIsas: string[];
  /** The one in use (the widest, unless ANVIL_SIMD or setSimdIsa chose another). */
  simdIsa: string;
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
export interface NativeAddon extends AddonOps<Float32Array, Int32Array, Float32Array | Uint16Array> {
  buildInfo(): BuildInfo;
  /** Loads the CUDA library on first call; never throws. The cuda_* ops are typed in cuda.ts. */
  cudaInfo(): CudaInfo;
  setThreads(n: number): void;
  /** Same as matmul, always the built-in packed AVX2/FMA sgemm (for tests and benchmarks against BLAS). */
  matmulBuiltin(out: F32, a: F32, b: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void;
  /**
   * Same as matmul, with a named sgemm candidate ("openblas", "avx2", "avx512"); RangeError when
   * not usable here. bDtype 1: b is bf16 bits (the candidate's bf16 variant; openblas has none).
   */
  matmulWith(name: string, out: F32, a: F32, b: F32 | Uint16Array, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number, bDtype?: number): void;
  /** The sgemm candidates usable here, in a fixed order. */
  gemmCandidates(): string[];
  /** Makes a candidate the sgemm behind matmul and the fused ops (src/backend/gemm.ts chooses it). */
  setGemm(name: string): void;
  /** The candidate behind matmul now. */
  gemmSelected(): string;
  /** Selects the vector ISA of the softmax kernels (one of buildInfo().simdIsas); RangeError otherwise. */
  setSimdIsa(name: string): void;
  /** Same as matmul, on a worker thread: resolves when done (for embedding apps). */
  matmulAsync(out: F32, a: F32, b: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): Promise<void>;
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
let cachedPath: string | null = null;

/** The file the addon was loaded from (null before loadAddon succeeds). */
export function addonPath(): string | null {
  return cachedPath;
}
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
      cachedPath = p;
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
