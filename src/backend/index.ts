// Backend selection: `--backend cpu|cuda|webgpu|auto`. GPU backends are imported lazily so
// that a machine without them never loads their code.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Backend, BackendChoice, BackendName } from "./backend.js";
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

async function createWebGpu(opts: { forAuto: boolean }): Promise<Backend> {
  // Auto checks for a GPU before loading Dawn, which otherwise prints its own warnings on every
  // command of a machine without one ("Couldn't load Vulkan: <source path>", or lavapipe's limit
  // notices). Asked for by name (or in `anvil doctor`), Dawn is tried as is.
  if (opts.forAuto) {
    const missing = missingGpu();
    if (missing) throw new Error(missing);
  }
  const { WebGpuBackend } = await import("./webgpu/index.js");
  const be = await WebGpuBackend.create();
  const a = be.describe().adapter;
  if (opts.forAuto && isSoftwareAdapter(a)) {
    be.destroy();
    throw new Error(`the adapter is a software renderer (${a.description || a.device}) on the same cores, slower than the native cpu backend`);
  }
  return be;
}

/**
 * Why there can be no hardware WebGPU adapter here, without loading Dawn, or null. Linux only
 * (elsewhere Dawn is asked): Dawn needs the Vulkan loader, and a GPU shows up as a device node
 * (/dev/dri/renderD*, /dev/nvidia*, WSL's /dev/dxg).
 */
export function missingGpu(root = "/"): string | null {
  if (process.platform !== "linux") return null;
  const at = (p: string) => join(root, p);
  const loader = "libvulkan.so.1";
  const libDirs = [...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), ...["lib", "usr/lib", "lib64", "usr/lib64"].map(at)];
  const inCache = () => {
    try {
      return readFileSync(at("etc/ld.so.cache")).includes(loader);
    } catch {
      return false;
    }
  };
  if (!libDirs.some((d) => existsSync(join(d, loader))) && !inCache()) return `no Vulkan loader (${loader}) found`;
  const nodes = (dir: string, prefix: string) => {
    try {
      return readdirSync(at(dir)).some((f) => f.startsWith(prefix));
    } catch {
      return false;
    }
  };
  if (!nodes("dev/dri", "renderD") && !nodes("dev", "nvidia") && !existsSync(at("dev/dxg"))) return "no GPU device node (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)";
  return null;
}

/**
 * What `auto` picks: cuda, then webgpu (hardware adapters only: a software adapter such as
 * lavapipe runs on the same cores as the native CPU backend, only slower), then cpu; with the
 * reason each one was passed over. `createBackend("auto")` and `anvil doctor` both ask here.
 */
export async function pickAuto(opts: { threads?: number } = {}): Promise<{ backend: Backend; passedOver: string[] }> {
  const passedOver: string[] = [];
  const gpus: [BackendName, () => Promise<Backend>][] = [
    ["cuda", createCuda],
    ["webgpu", () => createWebGpu({ forAuto: true })],
  ];
  for (const [name, open] of gpus) {
    try {
      return { backend: await open(), passedOver };
    } catch (e) {
      passedOver.push(`${name}: ${firstLine(e)}`);
    }
  }
  return { backend: new CpuBackend({ threads: opts.threads }), passedOver };
}

/** Creates the requested backend; `auto` (see pickAuto) reports a fall back to cpu in one line. */
export async function createBackend(choice: BackendChoice = "auto", opts: BackendOptions = {}): Promise<Backend> {
  const threads = opts.threads && opts.threads > 0 ? opts.threads : undefined;
  switch (choice) {
    case "cpu":
      return new CpuBackend({ threads });
    case "cuda":
      return createCuda();
    case "webgpu":
      return createWebGpu({ forAuto: false });
    case "auto": {
      const { backend, passedOver } = await pickAuto({ threads });
      if (backend.name === "cpu") (opts.warn ?? ((m: string) => process.stderr.write(m + "\n")))(`anvil: using the cpu backend (${passedOver.join("; ")})`);
      return backend;
    }
    default:
      throw new TypeError(`unknown backend "${choice as string}": use cpu, cuda, webgpu or auto`);
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}

export type { Backend } from "./backend.js";
