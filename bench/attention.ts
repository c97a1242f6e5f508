// Causal GQA attention on the CPU backend: forward, backward, and one decode step against a
// KV cache, with PyTorch (explicit softmax attention + autograd, 2 threads) as the peer.
//
// FLOP counts: forward 4*B*nh*T*T*hd/2 (QK^T and PV, causal half); backward 2.5x forward
// (QK^T recomputed, dP = dO V^T, dV, dQ, dK), as flash-attention papers count them.
// Decode is memory-bound: GB/s counts the K and V cache bytes read. RoPE (in place, the way
// the model calls it) counts one read and one write of the tensor.
//
//   anvil bench kernels [--quick | --full]
import { CpuBackend } from "../src/backend/cpu.js";
import { runTorch, timeIt, timeWindow, type BenchContext } from "./harness.js";

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
  /** Run the PyTorch peer (default true; skipped with a warning when torch is missing). */
  torch?: boolean;
  /** Shapes for forward/backward (default: the first of ATTENTION_SHAPES; --full: both). */
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

export async function runAttentionBench(ctx: BenchContext, opts: AttentionBenchOptions = {}): Promise<void> {
  const threads = opts.threads ?? 2;
  const shapes = opts.shapes ?? (ctx.full ? ATTENTION_SHAPES : ATTENTION_SHAPES.slice(0, 1));
  const [minTime, maxTime] = timeWindow(ctx);
  const be = new CpuBackend({ threads });
  const impl = `anvil cpu (${be.native.buildInfo().threads} threads)`;

  for (const s of shapes) {
    const { B, T, nh, nkv, hd } = s;
    const flops = (4 * B * nh * T * T * hd) / 2;
    const q = be.upload(randn(B * T * nh * hd, 1), [B, T, nh, hd]);
    const k = be.upload(randn(B * T * nkv * hd, 2), [B, T, nkv, hd]);
    const v = be.upload(randn(B * T * nkv * hd, 3), [B, T, nkv, hd]);
    const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]);
    const dout = be.upload(randn(B * T * nh * hd, 4), [B, T, nh, hd]);
    const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);

    ctx.progress(`attention fwd ${label(s)}`);
    const tf = timeIt(() => be.attentionForward(out, lse, q, k, v), minTime, maxTime);
    ctx.row({ name: `attention fwd ${label(s)}`, impl, seconds: tf, gflops: flops / tf / 1e9 });
    ctx.progress(`attention bwd ${label(s)}`);
    const tb = timeIt(() => be.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse), minTime, maxTime);
    ctx.row({ name: `attention bwd ${label(s)}`, impl, seconds: tb, gflops: (2.5 * flops) / tb / 1e9 });
  }

  const d = opts.decode ?? { B: 8, nh: 16, nkv: 4, hd: 64, len: 1024 };
  {
    const S = d.len + 1;
    const kc = be.upload(randn(d.B * S * d.nkv * d.hd, 5), [d.B, S, d.nkv, d.hd]);
    const vc = be.upload(randn(d.B * S * d.nkv * d.hd, 6), [d.B, S, d.nkv, d.hd]);
    const q = be.upload(randn(d.B * d.nh * d.hd, 7), [d.B, 1, d.nh, d.hd]);
    const o = be.zeros([d.B, 1, d.nh, d.hd]);
    const pos = be.upload(new Int32Array(d.B).fill(d.len), [d.B]);
    ctx.progress("attention decode");
    const t = timeIt(() => be.attentionDecode(o, q, kc, vc, pos), minTime, maxTime);
    const bytes = 2 * d.B * (d.len + 1) * d.nkv * d.hd * 4;
    ctx.row({ name: `attention decode B=${d.B} cache=${d.len + 1} nh=${d.nh} nkv=${d.nkv} hd=${d.hd}`, impl, seconds: t, gbps: bytes / t / 1e9 });
  }

  const r = opts.rope ?? { N: 2048, nh: 16, hd: 128 };
  {
    const x = be.upload(randn(r.N * r.nh * r.hd, 8), [r.N, r.nh, r.hd]);
    const pos = be.upload(Int32Array.from({ length: r.N }, (_, i) => i), [r.N]);
    ctx.progress("rope");
    const t = timeIt(() => be.ropeForward(x, x, pos, 1e6), minTime, maxTime);
    ctx.row({ name: `rope fwd in place N=${r.N} nh=${r.nh} hd=${r.hd}`, impl, seconds: t, gbps: (2 * x.size * 4) / t / 1e9 });
  }

  if (opts.torch ?? true) {
    ctx.progress("PyTorch peer");
    for (const r of runTorch("attention.py", { shapes, minTime, maxTime, threads }, threads)) ctx.row(r);
  }
}
