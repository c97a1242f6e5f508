// Causal GQA attention on the CPU backend: forward, backward, and one decode step against a
// KV cache, with PyTorch (explicit softmax attention + autograd, 2 threads) as the peer.
//
// FLOP counts: forward 4*B*nh*T*T*hd/2 (QK^T and PV, causal half); backward 2.5x forward
// (QK^T recomputed, dP = dO V^T, dV, dQ, dK), as flash-attention papers count them.
// Decode is memory-bound: GB/s counts the K and V cache bytes read. RoPE (in place, the way
// the model calls it) counts one read and one write of the tensor.
//
//   node dist/bench/attention.js [--json] [--quick] [--threads N] [--no-torch]
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CpuBackend } from "../src/backend/cpu.js";
import { report, runTorch, timeIt, type BenchRow } from "./harness.js";

export interface AttentionShape {
  B: number;
  T: number;
  nh: number;
  nkv: number;
  hd: number;
}

export interface AttentionBenchOptions {
  /** Threads for OpenMP and torch (default 2: the machine's cores). */
  threads?: number;
  /** Shorter timing windows and only the first shape (noisier numbers, a few seconds in all). */
  quick?: boolean;
  /** Run the PyTorch peer (default true; skipped with a warning when torch is missing). */
  torch?: boolean;
  /** Shapes for forward/backward (default ATTENTION_SHAPES). */
  shapes?: AttentionShape[];
  /** Decode step: batch B reading a cache filled to `len` positions. */
  decode?: { B: number; nh: number; nkv: number; hd: number; len: number };
  /** RoPE shape: N tokens of nh heads of hd. */
  rope?: { N: number; nh: number; hd: number };
}

/** A small-model training shape and a longer-context one. */
export const ATTENTION_SHAPES: AttentionShape[] = [
  { B: 8, T: 256, nh: 8, nkv: 2, hd: 64 },
  { B: 4, T: 1024, nh: 16, nkv: 4, hd: 64 },
];

const here = dirname(fileURLToPath(import.meta.url));

/** bench/torch/attention.py, from bench/ (sources) or dist/bench/ (compiled). */
function torchScript(): string {
  const candidates = [join(here, "torch", "attention.py"), join(here, "..", "..", "bench", "torch", "attention.py")];
  return candidates.find((p) => existsSync(p)) ?? candidates[0];
}

function randn(n: number, seed: number): Float32Array {
  // Cheap deterministic values in (-1, 1); the timing does not depend on them.
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

const label = (s: AttentionShape) => `B=${s.B} T=${s.T} nh=${s.nh} nkv=${s.nkv} hd=${s.hd}`;

export async function runAttentionBench(opts: AttentionBenchOptions = {}): Promise<BenchRow[]> {
  const threads = opts.threads ?? 2;
  const shapes = opts.shapes ?? (opts.quick ? ATTENTION_SHAPES.slice(0, 1) : ATTENTION_SHAPES);
  const minTime = opts.quick ? 0.2 : 0.5;
  const be = new CpuBackend({ threads });
  const impl = `anvil cpu (${be.native.buildInfo().threads} threads)`;
  const rows: BenchRow[] = [];

  for (const s of shapes) {
    const { B, T, nh, nkv, hd } = s;
    const flops = (4 * B * nh * T * T * hd) / 2;
    const q = be.upload(randn(B * T * nh * hd, 1), [B, T, nh, hd]);
    const k = be.upload(randn(B * T * nkv * hd, 2), [B, T, nkv, hd]);
    const v = be.upload(randn(B * T * nkv * hd, 3), [B, T, nkv, hd]);
    const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]);
    const dout = be.upload(randn(B * T * nh * hd, 4), [B, T, nh, hd]);
    const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);

    const tf = timeIt(() => be.attentionForward(out, lse, q, k, v), minTime);
    rows.push({ name: `attention fwd ${label(s)}`, impl, seconds: tf, gflops: flops / tf / 1e9 });
    const tb = timeIt(() => be.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse), minTime);
    rows.push({ name: `attention bwd ${label(s)}`, impl, seconds: tb, gflops: (2.5 * flops) / tb / 1e9 });
  }

  const d = opts.decode ?? { B: 8, nh: 16, nkv: 4, hd: 64, len: 1024 };
  {
    const S = d.len + 1;
    const kc = be.upload(randn(d.B * S * d.nkv * d.hd, 5), [d.B, S, d.nkv, d.hd]);
    const vc = be.upload(randn(d.B * S * d.nkv * d.hd, 6), [d.B, S, d.nkv, d.hd]);
    const q = be.upload(randn(d.B * d.nh * d.hd, 7), [d.B, 1, d.nh, d.hd]);
    const o = be.zeros([d.B, 1, d.nh, d.hd]);
    const pos = be.upload(new Int32Array(d.B).fill(d.len), [d.B]);
    const t = timeIt(() => be.attentionDecode(o, q, kc, vc, pos), minTime);
    const bytes = 2 * d.B * (d.len + 1) * d.nkv * d.hd * 4;
    rows.push({ name: `attention decode B=${d.B} cache=${d.len + 1} nh=${d.nh} nkv=${d.nkv} hd=${d.hd}`, impl, seconds: t, gbps: bytes / t / 1e9 });
  }

  const r = opts.rope ?? { N: 2048, nh: 16, hd: 128 };
  {
    const x = be.upload(randn(r.N * r.nh * r.hd, 8), [r.N, r.nh, r.hd]);
    const pos = be.upload(Int32Array.from({ length: r.N }, (_, i) => i), [r.N]);
    const t = timeIt(() => be.ropeForward(x, x, pos, 1e6), minTime);
    rows.push({ name: `rope fwd in place N=${r.N} nh=${r.nh} hd=${r.hd}`, impl, seconds: t, gbps: (2 * x.size * 4) / t / 1e9 });
  }

  if (opts.torch ?? true) rows.push(...runTorch(torchScript(), { shapes, minTime, threads }, threads));
  // Group rows by what was measured, anvil before torch.
  const order = [...new Set(rows.map((r) => r.name))];
  return rows.sort((x, y) => order.indexOf(x.name) - order.indexOf(y.name));
}

async function main(argv: string[]): Promise<void> {
  const t = argv.indexOf("--threads");
  const rows = await runAttentionBench({
    threads: t >= 0 ? Number(argv[t + 1]) : 2,
    quick: argv.includes("--quick"),
    torch: !argv.includes("--no-torch"),
  });
  report("Causal GQA attention and RoPE (CPU)", rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  });
}
