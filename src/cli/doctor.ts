// `anvil doctor`: what this machine offers, backend by backend, and why one is unusable.
import { measureGemm, selectGemm } from "../backend/gemm.js";
import { createBackend, isSoftwareAdapter, pickAuto } from "../backend/index.js";
import type { WebGpuBackend } from "../backend/webgpu/index.js";
import { loadAddon } from "../backend/native.js";
import { availableParallelism, cpus } from "node:os";

export interface DoctorReport {
  node: string;
  platform: string;
  cpu: { usable: boolean; model?: string; cores: number; blas?: string; threads?: number; openmp?: boolean; avx2?: boolean; simd?: { selected: string; usable: string[] }; gemm?: DoctorGemm; error?: string };
  cuda: { usable: boolean; built: boolean; devices: number; error: string | null };
  webgpu: { usable: boolean; adapter?: string; software?: boolean; features?: string[]; maxStorageBufferBindingSize?: number; error?: string };
  /** What `--backend auto` picks here, and why it passed over the others (the same probe). */
  auto: { backend: string; passedOver: string[] };
}

/** The sgemm behind the CPU backend and the GFLOP/s of every candidate (src/backend/gemm.ts). */
export interface DoctorGemm {
  selected: string;
  /** measured now, from the per-machine cache, or forced by ANVIL_GEMM. */
  source: string;
  gflops: Record<string, number>;
  cacheFile?: string;
  /** Why the selection failed (a bad ANVIL_GEMM); the default candidate is then in use. */
  error?: string;
}

export async function doctor(): Promise<DoctorReport> {
  const rep: DoctorReport = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: { usable: false, model: cpus()[0]?.model, cores: availableParallelism() },
    cuda: { usable: false, built: false, devices: 0, error: "not checked" },
    webgpu: { usable: false },
    auto: { backend: "none", passedOver: [] },
  };
  try {
    const addon = loadAddon();
    const info = addon.buildInfo();
    Object.assign(rep.cpu, { usable: true, blas: info.blas, threads: info.threads, openmp: info.openmp, avx2: info.avx2, simd: { selected: info.simdIsa, usable: info.simdIsas } });
    try {
      const g = selectGemm(addon);
      // Forced by ANVIL_GEMM: nothing was timed, so time the candidates for the report.
      rep.cpu.gemm = { selected: g.selected, source: g.source, gflops: g.source === "env" ? measureGemm(addon) : g.gflops, cacheFile: g.cacheFile };
    } catch (e) {
      rep.cpu.gemm = { selected: addon.gemmSelected(), source: "default", gflops: {}, error: (e as Error).message };
    }
    try {
      const c = addon.cudaInfo();
      rep.cuda = { usable: c.loaded && c.devices > 0, built: c.built, devices: c.devices, error: c.error };
    } catch (e) {
      rep.cuda = { usable: false, built: info.cudaBuilt, devices: 0, error: (e as Error).message };
    }
  } catch (e) {
    rep.cpu.error = (e as Error).message;
    rep.cuda.error = "the native addon did not load";
  }
  try {
    const be = (await createBackend("webgpu")) as WebGpuBackend;
    const d = be.describe();
    rep.webgpu = { usable: true, adapter: d.adapter.description || d.adapter.device, software: isSoftwareAdapter(d.adapter), features: d.adapter.features, maxStorageBufferBindingSize: d.maxBindingBytes };
    be.destroy();
  } catch (e) {
    rep.webgpu = { usable: false, error: (e as Error).message.split("\n")[0] };
  }
  try {
    const { backend, passedOver } = await pickAuto();
    rep.auto = { backend: backend.name, passedOver };
    backend.destroy();
  } catch (e) {
    rep.auto.passedOver.push((e as Error).message.split("\n")[0]);
  }
  return rep;
}

export function formatDoctor(r: DoctorReport): string {
  const yes = (b: boolean) => (b ? "yes" : "no ");
  const lines = [`node ${r.node} on ${r.platform}`];
  lines.push(
    `cpu     ${yes(r.cpu.usable)}  ${r.cpu.usable ? `${r.cpu.model ?? "?"}, ${r.cpu.cores} cores; BLAS: ${r.cpu.blas}; threads: ${r.cpu.threads}; OpenMP: ${r.cpu.openmp}; AVX2: ${r.cpu.avx2}` : r.cpu.error}`,
  );
  const g = r.cpu.gemm;
  if (g) {
    const each = Object.entries(g.gflops).map(([n, v]) => `${n} ${v.toFixed(0)}`).join(", ");
    const why = g.error ?? (g.source === "env" ? "forced by ANVIL_GEMM" : g.source === "cache" ? `fastest, measured earlier: ${g.cacheFile}` : "fastest, measured now");
    lines.push(`        sgemm: ${g.selected} (${why})${each ? `; GFLOP/s: ${each}` : ""}`);
  }
  const v = r.cpu.simd;
  if (v) lines.push(`        softmax/sampling vector ISA: ${v.selected} (usable: ${v.usable.join(", ")}; ANVIL_SIMD=avx2 forces the narrower)`);
  lines.push(`cuda    ${yes(r.cuda.usable)}  compiled: ${r.cuda.built}; devices: ${r.cuda.devices}${r.cuda.error ? `; ${r.cuda.error}` : ""}`);
  lines.push(
    `webgpu  ${yes(r.webgpu.usable)}  ${r.webgpu.usable ? `${r.webgpu.adapter}${r.webgpu.software ? " (software adapter: runs on the CPU)" : ""}; f16: ${r.webgpu.features?.includes("shader-f16")}; subgroups: ${r.webgpu.features?.includes("subgroups")}` : r.webgpu.error}`,
  );
  lines.push(`auto    ${r.auto.backend}${r.auto.passedOver.length ? `  (passed over ${r.auto.passedOver.join("; ")})` : ""}`);
  return lines.join("\n");
}
