// WGSL kernels (kernels/<op>.wgsl at the package root) loaded from disk once, compiled into
// compute pipelines on first use and cached by (file, entry point, defines).
//
// Defines are prepended as module-scope constants (`const HD: u32 = 128u;`), so a kernel can
// size private arrays and unroll loops for a head dim without a preprocessor.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The kernels/ directory: found by walking up from this file (src/ under vitest, dist/src/ when built). */
export function kernelsDir(): string {
  if (process.env.ANVIL_KERNELS) return process.env.ANVIL_KERNELS;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "kernels");
    if (existsSync(join(candidate, "matmul.wgsl")) && existsSync(join(dir, "package.json"))) return candidate;
    dir = dirname(dir);
  }
  throw new Error("webgpu: cannot find the kernels/ directory (set ANVIL_KERNELS to its path)");
}

export type Defines = Record<string, number>;

export class PipelineCache {
  private readonly sources = new Map<string, string>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly dir: string;

  constructor(private readonly device: GPUDevice) {
    this.dir = kernelsDir();
  }

  get(file: string, entry: string, defines: Defines = {}): GPUComputePipeline {
    const defKeys = Object.keys(defines).sort();
    const key = `${file}:${entry}:${defKeys.map((k) => `${k}=${defines[k]}`).join(",")}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    const prelude = defKeys.map((k) => `const ${k}: u32 = ${checkDefine(k, defines[k])}u;\n`).join("");
    const module = this.device.createShaderModule({ label: `${file}.wgsl`, code: prelude + this.source(file) });
    p = this.device.createComputePipeline({ label: `${file}:${entry}`, layout: "auto", compute: { module, entryPoint: entry } });
    this.pipelines.set(key, p);
    return p;
  }

  private source(file: string): string {
    let s = this.sources.get(file);
    if (s === undefined) {
      // WGSL has no includes: `//!include name` pastes kernels/lib/name.wgsl in its place.
      s = readFileSync(join(this.dir, `${file}.wgsl`), "utf8").replace(/^\/\/!include (\w+)$/gm, (_, lib: string) =>
        readFileSync(join(this.dir, "lib", `${lib}.wgsl`), "utf8"),
      );
      this.sources.set(file, s);
    }
    return s;
  }
}

function checkDefine(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`webgpu: define ${name} must be a non-negative integer, got ${v}`);
  return v;
}
