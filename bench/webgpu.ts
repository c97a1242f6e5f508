// WebGPU backend kernels (Dawn; on this machine Mesa lavapipe, i.e. the CPU): matmul, attention
// forward / backward / decode, RMSNorm, the fused linear log-prob and the sampler. Each timing
// includes a queue sync, so it is the latency of the op as the trainer sees it.
//
//   node dist/bench/webgpu.js [--json] [--quick]
import { pathToFileURL } from "node:url";
import type { Tensor } from "../src/backend/backend.js";
import { WebGpuBackend } from "../src/backend/webgpu/index.js";
import { report, timeItAsync, type BenchRow } from "./harness.js";

function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

export async function runWebGpuBench(opts: { quick?: boolean; minTime?: number } = {}): Promise<BenchRow[]> {
  const be = await WebGpuBackend.create();
  const d = be.describe();
  const impl = `anvil webgpu (${d.adapter.vendor || "?"} ${d.adapter.architecture || d.adapter.device || ""})`.trim();
  const minTime = opts.minTime ?? (opts.quick ? 0.2 : 0.5);
  const rows: BenchRow[] = [];
  const up = (n: number, shape: number[], seed: number): Tensor => be.upload(values(n, seed), shape);
  const time = (fn: () => void) => timeItAsync(async () => {
    fn();
    await be.sync();
  }, minTime);

  try {
    for (const n of opts.quick ? [256] : [256, 512, 1024]) {
      const a = up(n * n, [n, n], 1), b = up(n * n, [n, n], 2), out = be.zeros([n, n]);
      const t = await time(() => be.matmul(out, a, b, { transB: true }));
      rows.push({ name: `matmul ${n}x${n}x${n} (B^T)`, impl, seconds: t, gflops: (2 * n ** 3) / t / 1e9 });
    }
    {
      // A decode step's LM head: few rows against a (V, H) weight (the skinny kernel).
      const [M, V, H] = opts.quick ? [8, 8192, 256] : [8, 32000, 512];
      const x = up(M * H, [M, H], 15), W = up(V * H, [V, H], 16), out = be.zeros([M, V]);
      const t = await time(() => be.matmul(out, x, W, { transB: true }));
      rows.push({ name: `matmul decode ${M}x${V}x${H} (B^T)`, impl, seconds: t, gflops: (2 * M * V * H) / t / 1e9, gbps: (V * H * 4) / t / 1e9 });
    }
    {
      const [B, T, nh, nkv, hd] = opts.quick ? [2, 128, 8, 2, 64] : [4, 256, 8, 2, 64];
      const q = up(B * T * nh * hd, [B, T, nh, hd], 3), k = up(B * T * nkv * hd, [B, T, nkv, hd], 4), v = up(B * T * nkv * hd, [B, T, nkv, hd], 5);
      const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]), dout = up(B * T * nh * hd, [B, T, nh, hd], 6);
      const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
      const flops = (4 * B * nh * T * T * hd) / 2;
      const label = `B=${B} T=${T} nh=${nh} nkv=${nkv} hd=${hd}`;
      const tf = await time(() => be.attentionForward(out, lse, q, k, v));
      rows.push({ name: `attention fwd ${label}`, impl, seconds: tf, gflops: flops / tf / 1e9 });
      const tb = await time(() => be.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse));
      rows.push({ name: `attention bwd ${label}`, impl, seconds: tb, gflops: (2.5 * flops) / tb / 1e9 });
      const S = 1024, Bd = 8;
      const kc = up(Bd * S * nkv * hd, [Bd, S, nkv, hd], 7), vc = up(Bd * S * nkv * hd, [Bd, S, nkv, hd], 8);
      const qd = up(Bd * nh * hd, [Bd, 1, nh, hd], 9), od = be.zeros([Bd, 1, nh, hd]);
      const pos = be.upload(new Int32Array(Bd).fill(S - 1), [Bd]);
      const td = await time(() => be.attentionDecode(od, qd, kc, vc, pos));
      rows.push({ name: `attention decode B=${Bd} cache=${S} nh=${nh} nkv=${nkv} hd=${hd}`, impl, seconds: td, gbps: (2 * Bd * S * nkv * hd * 4) / td / 1e9 });
    }
    {
      const N = 2048, C = 1024;
      const x = up(N * C, [N, C], 10), w = up(C, [C], 11), out = be.zeros([N, C]), rstd = be.zeros([N]);
      const t = await time(() => be.rmsnormForward(out, rstd, x, w, 1e-6));
      rows.push({ name: `rmsnorm fwd ${N}x${C}`, impl, seconds: t, gbps: (2 * N * C * 4) / t / 1e9 });
    }
    {
      const [N, H, V] = opts.quick ? [64, 256, 8192] : [256, 512, 32000];
      const h = up(N * H, [N, H], 12), W = up(V * H, [V, H], 13), tg = be.upload(new Int32Array(N).fill(7), [N]);
      const lp = be.zeros([N]), ent = be.zeros([N]), lse = be.zeros([N]);
      const t = await time(() => be.linearLogprobForward(lp, ent, lse, h, W, tg, 1));
      rows.push({ name: `linearLogprob fwd N=${N} H=${H} V=${V}`, impl, seconds: t, gflops: (2 * N * H * V) / t / 1e9 });
    }
    {
      const [B, V] = [16, 32000];
      const logits = up(B * V, [B, V], 14), ids = be.zeros([B], "i32"), seeds = Uint32Array.from({ length: B }, (_, i) => i);
      const t = await time(() => be.sample(ids, logits, seeds, { temperature: 0.8, topK: 50, topP: 0.9, minP: 0 }));
      rows.push({ name: `sample B=${B} V=${V} top-k 50 top-p 0.9`, impl, seconds: t });
    }
  } finally {
    be.destroy();
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  report("WebGPU backend kernels", await runWebGpuBench({ quick: process.argv.includes("--quick") }));
}
