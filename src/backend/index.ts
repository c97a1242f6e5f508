// Backend selection: `--backend cpu|cuda|webgpu|auto`. GPU backends are imported lazily so
// that a machine without them never loads their code.
import type { Backend, BackendChoice } from "./backend.js";
import { CpuBackend } from "./cpu.js";

export type { BackendChoice } from "./backend.js";

export interface BackendOptions {
  threads?: number;
  /** Called with the one-line reason when auto falls back. */
  warn?: (msg: string) => void;
}

async function createCuda(): Promise<Backend> {
  const { CudaBackend } = await import("./cuda.js");
  return CudaBackend.create();
}

/** A CPU-emulated adapter (Mesa llvmpipe/lavapipe, SwiftShader, WARP). */
export function isSoftwareAdapter(a: { vendor: string; architecture: string; device: string; description: string }): boolean {
  return a.architecture === "software" || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(`${a.device} ${a.description}`);
}

async function createWebGpu(opts: { allowSoftware: boolean }): Promise<Backend> {
  const { WebGpuBackend } = await import("./webgpu/index.js");
  const be = await WebGpuBackend.create();
  const a = be.describe().adapter;
  if (!opts.allowSoftware && isSoftwareAdapter(a)) {
    be.destroy();
    throw new Error(`the adapter is a software renderer (${a.description || a.device}) on the same cores, slower than the native cpu backend`);
  }
  return be;
}

/**
 * Creates the requested backend. `auto` tries cuda, then webgpu (hardware adapters only: a
 * software adapter such as lavapipe runs on the same cores as the native CPU backend, only
 * slower), then cpu, and reports the fallback in one line.
 */
export async function createBackend(choice: BackendChoice = "auto", opts: BackendOptions = {}): Promise<Backend> {
  const threads = opts.threads && opts.threads > 0 ? opts.threads : undefined;
  switch (choice) {
    case "cpu":
      return new CpuBackend({ threads });
    case "cuda":
      return createCuda();
    case "webgpu":
      return createWebGpu({ allowSoftware: true });
    case "auto": {
      const why: string[] = [];
      try {
        return await createCuda();
      } catch (e) {
        why.push(`cuda: ${firstLine(e)}`);
      }
      try {
        return await createWebGpu({ allowSoftware: false });
      } catch (e) {
        why.push(`webgpu: ${firstLine(e)}`);
      }
      (opts.warn ?? ((m: string) => process.stderr.write(m + "\n")))(`anvil: using the cpu backend (${why.join("; ")})`);
      return new CpuBackend({ threads });
    }
    default:
      throw new TypeError(`unknown backend "${choice as string}": use cpu, cuda, webgpu or auto`);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

export type { Backend } from "./backend.js";
