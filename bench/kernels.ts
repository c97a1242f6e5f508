// Fused-kernel microbenchmarks: anvil (CPU backend) vs an unfused composition on the same
// backend vs PyTorch (bench/torch/kernels.py), each with its memory / FLOP floor.
//
//   anvil bench kernels [--quick | --full]
//
// Cases (default sizes; --full in brackets)
//   sample top-p      B=64 V=32000 [B in {64, 256}, V in {32000, 151936}], Gaussian logits (std 3)
//                     and Zipf-like ones (a real LM's long tail); torch: softmax, sort, cumsum,
//                     mask, multinomial. Exp-bound cases run once per vector ISA (perIsa).
//   logprob+entropy   N=1024 [4096], V=32000 from materialised logits; torch: log_softmax + gather + entropy
//   linear logprob    fwd+bwd N=512 [4096], H=512 [and 1024], V=32000: fused one-pass
//                     (linearLogprobForwardBackward, the upstream gradient given up front, 3
//                     matmuls) vs fused two-pass (forward, then backward: 4) vs the fused
//                     sequence loss (linearSequenceLoss, DPO's form: the gradient from pairs of
//                     64-row sums, one pass per block of pairs: 3) vs matmul +
//                     logprobFromLogits + crossEntropyBackward + 2 matmuls (unfused, same backend,
//                     same sgemm) vs torch autograd; and with half the rows masked out of the
//                     loss (zero dlogprob/dentropy, as GRPO's prompt tokens), which only the
//                     fused ops can skip
//   linear GRPO loss  fwd+bwd N=512 [4096] (B=8, T=N/8), H=512, V=32000, ratio 1 (no old
//                     log-probs), k3 KL to a reference, token-mean: the one-pass fused op
//                     (linearGrpoLoss, 3 matmuls) vs the two-pass fused composition
//                     (linearLogprobForward + grpoLoss + linearLogprobBackward, 4 matmuls) vs
//                     the unfused composition (logits matmul + logprobFromLogits + grpoLoss +
//                     crossEntropyBackward + 2 matmuls) vs torch autograd; and with half of each
//                     sequence outside the loss (prompt tokens), which the one-pass op skips
//                     entirely and the two-pass one in its backward only
//   grpo loss         N=65536 (B=64, T=1024), forward + backward
//
// Peak memory: every (case, impl) runs once more in a fresh child process (node or python) that
// allocates the inputs and outputs (pages touched), resets the peak-RSS counter
// (/proc/self/clear_refs = 5), runs the op once and reports VmHWM - VmRSS(before): the workspace
// the op itself touched (for torch this includes autograd's saved tensors and fresh outputs).
// Floors: bytes that must be moved / the stream bandwidth, or FLOPs / the selected sgemm's
// speed, whichever is larger; both measured at the start of the same run (the first two rows).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runTorch, timeIt, timeWindow, type BenchContext } from "./harness.js";
import { CpuBackend, CpuTensor } from "../src/backend/cpu.js";
import { GRPO_STATS, type GrpoLossOptions } from "../src/backend/backend.js";
import { linearGrpoLossComposed } from "../src/backend/linear-grpo-composed.js";
import { measureGemm } from "../src/backend/gemm.js";
import { loadAddon } from "../src/backend/native.js";

/** The machine's limits the floors are made of, measured at the start of the same run. */
interface Floors {
  /** bytes/s of a stream (out = a + b over three 128 MiB arrays: two reads and a write) */
  bandwidth: number;
  /** FLOP/s of the selected sgemm on the model's shapes */
  sgemm: number;
  gemm: string;
}

function measureFloors(be: CpuBackend): { floors: Floors; streamSeconds: number } {
  const n = 1 << 25;
  const [a, b, out] = [be.zeros([n]), be.zeros([n]), be.zeros([n])];
  be.fill(a, 1);
  be.fill(b, 2);
  be.add(out, a, b); // warm-up: page faults, thread team
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    be.add(out, a, b);
    best = Math.min(best, (performance.now() - t0) / 1e3);
  }
  for (const t of [a, b, out]) t.dispose();
  const gemm = be.native.gemmSelected();
  return { floors: { bandwidth: (3 * 4 * n) / best, sgemm: measureGemm(be.native)[gemm]! * 1e9, gemm }, streamSeconds: best };
}

/** Size mode: quick (smoke), default, full (the large sizes). */
type Mode = { quick: boolean; full: boolean };

export interface KernelsBenchOptions {
  /** Run the PyTorch peer (default true; skipped with a warning when torch is missing). */
  torch?: boolean;
  /** Measure peak memory in child processes (default true). */
  mem?: boolean;
  /** Only cases whose name contains this substring. */
  only?: string;
}

interface Impl {
  impl: string;
  /** Allocates inputs; returns the timed function. */
  setup(be: CpuBackend): (() => void) | string; // a string = skipped, with the reason
}
interface Case {
  name: string;
  bytes: number;
  flops: number;
  impls: Impl[];
  /** Arguments of the PyTorch peer (bench/torch/kernels.py); null: no peer for this case. */
  torch: Record<string, unknown> | null;
}

function randn(n: number, scale = 1, seed = 1): Float32Array {
  // xorshift + sum of uniforms: fast, deterministic, roughly normal
  let s = seed * 2654435761 >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < 4; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += (s >>> 0) / 4294967296;
    }
    out[i] = scale * (acc - 2) * 1.7320508;
  }
  return out;
}
function randint(n: number, hi: number, seed = 7): Int32Array {
  let s = seed;
  return Int32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % hi);
}
const t = (be: CpuBackend, data: Float32Array | Int32Array, shape: number[]) => new CpuTensor(be, shape, data instanceof Int32Array ? "i32" : "f32", data);

/**
 * The exp-bound fused kernels once per vector ISA of their inner loops (native/cpu/softmax_kernels.h),
 * the narrower first, the default (widest) last so it stays selected for the cases after them.
 */
function perIsa(label: string, setup: (be: CpuBackend) => () => void): Impl[] {
  const isas = loadAddon().buildInfo().simdIsas;
  return isas.map((isa, i) => ({
    impl: i === isas.length - 1 ? `${label} ${isa}` : `${label} ${isa} (not default)`,
    setup(be: CpuBackend) {
      be.native.setSimdIsa(isa);
      return setup(be);
    },
  }));
}

/**
 * Zipf-like logits in a random order (the k-th most likely token at -1.3 log k), the long tail of
 * a real LM's next-token distribution: top-p 0.9 keeps a few hundred tokens of 32,000. Gaussian
 * logits (the other case) are far flatter: top-p keeps most of the vocabulary, so the nucleus
 * search, not the read of the logits, is the cost.
 */
function zipfLogits(B: number, V: number, seed: number): Float32Array {
  const out = new Float32Array(B * V);
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) >>> 0) / 4294967296;
  for (let b = 0; b < B; b++) {
    const perm = Array.from({ length: V }, (_, i) => i);
    for (let i = V - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let k = 0; k < V; k++) out[b * V + perm[k]] = -1.3 * Math.log(k + 1) + 0.01 * (next() - 0.5);
  }
  return out;
}

function sampleCase(B: number, V: number, zipf = false): Case {
  return {
    name: `sample top-p=0.9 B=${B} V=${V}${zipf ? " (Zipf logits)" : ""}`,
    bytes: B * V * 4,
    flops: 0,
    torch: { op: "sample", B, V, topP: 0.9, zipf },
    impls: perIsa("anvil fused", (be) => {
      const logits = t(be, zipf ? zipfLogits(B, V, 3) : randn(B * V, 3), [B, V]);
      const ids = be.zeros([B], "i32");
      const seeds = Uint32Array.from({ length: B }, (_, i) => i);
      return () => be.sample(ids, logits, seeds, { temperature: 1, topK: 0, topP: 0.9, minP: 0 });
    }),
  };
}

function logprobCase(N: number, V: number): Case {
  return {
    name: `logprob+entropy N=${N} V=${V}`,
    bytes: N * V * 4,
    flops: 0,
    torch: { op: "logprob", N, V },
    impls: perIsa("anvil fused", (be) => {
      const logits = t(be, randn(N * V, 2), [N, V]);
      const targets = t(be, randint(N, V), [N]);
      const lp = be.zeros([N]), ent = be.zeros([N]);
      return () => be.logprobFromLogits(lp, ent, logits, targets, 1);
    }),
  };
}

/**
 * Fused linear log-prob against its unfused composition on the same backend (same sgemm).
 * `masked`: the fraction of rows whose upstream gradient is 0, as the prompt tokens and padding
 * of a GRPO batch (the loss's mask zeroes their dlogprob and dentropy).
 */
function linearCase(N: number, H: number, V: number, backward = true, masked = 0): Case {
  const keep = (g: Float32Array) => g.map((x, i) => (i < masked * N ? 0 : x));
  const inputs = (be: CpuBackend) => ({
    hidden: t(be, randn(N * H, 1, 3), [N, H]),
    weight: t(be, randn(V * H, 1 / Math.sqrt(H), 4), [V, H]),
    targets: t(be, randint(N, V), [N]),
    dlogprob: t(be, keep(randn(N, 1, 5)), [N]),
    dentropy: t(be, keep(randn(N, 1, 6)), [N]),
  });
  // the fwd+bwd outputs, touched now: the memory figure then counts workspace only
  const outputs = (be: CpuBackend) => {
    const o = { lp: be.zeros([N]), ent: be.zeros([N]), dh: be.zeros([N, H]), dw: be.zeros([V, H]) };
    be.fill(o.dh, 0);
    be.fill(o.dw, 0);
    return o;
  };
  if (!backward)
    return {
      name: `linear logprob fwd N=${N} H=${H} V=${V}`,
      bytes: (V * H + N * H) * 4,
      flops: 2 * N * H * V,
      torch: { op: "linear", N, H, V, backward: false },
      impls: [
        {
          impl: "anvil fused",
          setup(be) {
            const x = inputs(be);
            const lp = be.zeros([N]), ent = be.zeros([N]), lse = be.zeros([N]);
            return () => be.linearLogprobForward(lp, ent, lse, x.hidden, x.weight, x.targets, 1);
          },
        },
        {
          impl: "anvil unfused",
          setup(be) {
            const x = inputs(be);
            const logits = be.zeros([N, V]), lp = be.zeros([N]), ent = be.zeros([N]);
            return () => {
              be.matmul(logits, x.hidden, x.weight, { transB: true });
              be.logprobFromLogits(lp, ent, logits, x.targets, 1);
            };
          },
        },
      ],
    };
  return {
    name: `linear logprob fwd+bwd N=${N} H=${H} V=${V}${masked ? ` (${masked * 100}% of rows masked)` : ""}`,
    bytes: (V * H * 2 + N * H * 2) * 4,
    // logits 2NHV + dhidden 2NHV + dweight 2NHV: the one-pass op's and the unfused composition's
    // work (the two-pass op recomputes the logits in the backward: 8NHV)
    flops: 6 * N * H * V,
    torch: masked ? null : { op: "linear", N, H, V }, // torch does the same work masked or not
    impls: [
      {
        // the upstream gradient given up front (a loss linear in log-probs: SFT's cross-entropy)
        impl: "anvil fused one-pass",
        setup(be) {
          const x = inputs(be);
          const { lp, ent, dh, dw } = outputs(be);
          return () => be.linearLogprobForwardBackward(lp, ent, dh, dw, x.hidden, x.weight, x.targets, x.dlogprob, x.dentropy, 1);
        },
      },
      {
        // the upstream gradient made from the outputs (DPO's sequence sums): the backward recomputes the logits
        impl: "anvil fused two-pass",
        setup(be) {
          const x = inputs(be);
          const { lp, ent, dh, dw } = outputs(be);
          const lse = be.zeros([N]);
          return () => {
            be.linearLogprobForward(lp, ent, lse, x.hidden, x.weight, x.targets, 1);
            be.linearLogprobBackward(dh, dw, x.dlogprob, x.dentropy, x.hidden, x.weight, x.targets, lse, ent, 1);
          };
        },
      },
      {
        // DPO's form: sequences of 64 rows in pairs, d loss / d sum known once a pair's sums are;
        // one pass per block of whole pairs (the CPU op's work is synchronous: its promise is
        // settled when the call returns)
        impl: "anvil fused seq. loss",
        setup(be) {
          const x = inputs(be);
          const { lp, ent, dh, dw } = outputs(be);
          const segment = Int32Array.from({ length: N }, (_, i) => (i < masked * N ? -1 : i >> 6));
          const groupOf = Int32Array.from({ length: Math.ceil(N / 64) }, (_, q) => q >> 1);
          const lossGrad = (segs: Int32Array) => Array.from(segs, (q) => (q % 2 ? -0.01 : 0.01));
          return () => void be.linearSequenceLoss(lp, ent, dh, dw, x.hidden, x.weight, x.targets, segment, groupOf, lossGrad, 1);
        },
      },
      {
        // Materialises (N, V) logits and dlogits. The backward is the logprob term only
        // (crossEntropyBackward has no entropy input), so it does slightly less work than fused.
        impl: "anvil unfused",
        setup(be) {
          const nat = be.native as unknown as Record<string, unknown>;
          if (typeof nat.matmul !== "function" || typeof nat.crossEntropyBackward !== "function") return "needs matmul + crossEntropyBackward in the addon";
          const x = inputs(be);
          const logits = be.zeros([N, V]), dlogits = be.zeros([N, V]);
          const lp = be.zeros([N]), ent = be.zeros([N]), negd = be.zeros([N]);
          const dh = be.zeros([N, H]), dw = be.zeros([V, H]);
          be.fill(dh, 0); // outputs touched now; logits and dlogits are the unfused workspace
          be.fill(dw, 0);
          return () => {
            be.matmul(logits, x.hidden, x.weight, { transB: true });
            be.logprobFromLogits(lp, ent, logits, x.targets, 1);
            // d(-lp) form: dlogits = (softmax - onehot) * (-dlogprob)
            negd.f32.set(x.dlogprob.f32);
            be.scale(negd, -1);
            be.crossEntropyBackward(dlogits, negd, logits, x.targets);
            be.matmul(dh, dlogits, x.weight);
            be.matmul(dw, dlogits, x.hidden, { transA: true, accumulate: true });
          };
        },
      },
    ],
  };
}

/**
 * The LM head + GRPO loss, forward and backward, three ways on the same backend. The loss has
 * no entropy bonus, so the unfused composition's crossEntropyBackward (logprob term only) does
 * exactly the work the fused ops do. `masked`: the fraction of each sequence outside the loss.
 */
function linearGrpoCase(N: number, H: number, V: number, masked = 0): Case {
  const B = 8, T = N / B;
  const o: GrpoLossOptions = { B, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0, tisCap: 0, aggregation: "token-mean" };
  const inputs = (be: CpuBackend) => {
    const dh = be.zeros([N, H]), dw = be.zeros([V, H]);
    be.fill(dh, 0); // touch the outputs now: the memory figure then counts workspace only
    be.fill(dw, 0);
    return {
      hidden: t(be, randn(N * H, 1, 3), [N, H]),
      weight: t(be, randn(V * H, 1 / Math.sqrt(H), 4), [V, H]),
      targets: t(be, randint(N, V), [N]),
      ref: t(be, randn(N, 1, 5).map((v) => v - 10), [N]),
      adv: t(be, randn(B, 1, 6), [B]),
      mask: t(be, Float32Array.from({ length: N }, (_, i) => Number(i % T >= masked * T)), [N]),
      lp: be.zeros([N]),
      ent: be.zeros([N]),
      stats: be.zeros([GRPO_STATS.length]),
      dh,
      dw,
    };
  };
  return {
    name: `linear GRPO loss fwd+bwd N=${N} H=${H} V=${V}${masked ? ` (${masked * 100}% of rows masked)` : ""}`,
    bytes: (V * H * 2 + N * H * 2) * 4,
    // logits 2NHV + dhidden 2NHV + dweight 2NHV: the one-pass op's work (the two-pass one adds 2NHV)
    flops: 6 * N * H * V * (1 - masked),
    torch: masked ? null : { op: "linear_grpo", N, H, V, B },
    impls: [
      {
        impl: "anvil fused one-pass",
        setup(be) {
          const x = inputs(be);
          return () => be.linearGrpoLoss(x.dh, x.dw, x.stats, x.lp, x.ent, x.hidden, x.weight, x.targets, null, x.ref, null, x.adv, x.mask, 1, o);
        },
      },
      {
        impl: "anvil fused two-pass",
        setup(be) {
          const x = inputs(be);
          return () => linearGrpoLossComposed(be, x.dh, x.dw, x.stats, x.lp, x.ent, x.hidden, x.weight, x.targets, null, x.ref, null, x.adv, x.mask, 1, o);
        },
      },
      {
        impl: "anvil unfused",
        setup(be) {
          const x = inputs(be);
          const logits = be.zeros([N, V]), dlogits = be.zeros([N, V]);
          const old = be.zeros([N]), dlp = be.zeros([N]), dent = be.zeros([N]);
          return () => {
            be.matmul(logits, x.hidden, x.weight, { transB: true });
            be.logprobFromLogits(x.lp, x.ent, logits, x.targets, 1);
            be.copy(old, x.lp);
            be.grpoLoss(dlp, dent, x.stats, x.lp, old, x.ref, null, x.ent, x.adv, x.mask, o);
            be.scale(dlp, -1); // crossEntropyBackward takes d(-logprob)
            be.crossEntropyBackward(dlogits, dlp, logits, x.targets);
            be.matmul(x.dh, dlogits, x.weight);
            be.matmul(x.dw, dlogits, x.hidden, { transA: true, accumulate: true });
          };
        },
      },
    ],
  };
}

function grpoCase(B: number, T: number): Case {
  const N = B * T;
  return {
    name: `grpo loss fwd+bwd N=${N} (B=${B}, T=${T})`,
    bytes: N * 4 * 8, // 6 inputs + 2 gradients
    flops: 0,
    torch: { op: "grpo", B, T },
    impls: [
      {
        impl: "anvil fused",
        setup(be) {
          const old = randn(N, 0.5, 11).map((v) => v - 1.5);
          const lp = t(be, old.map((v, i) => v + 0.1 * Math.sin(i)), [N]);
          const o: GrpoLossOptions = { B, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0.001, tisCap: 2, aggregation: "seq-mean-token-mean" };
          const tensors = {
            old: t(be, old, [N]),
            ref: t(be, old.map((v, i) => v + 0.05 * Math.cos(i)), [N]),
            roll: t(be, old.map((v, i) => v + 0.02 * Math.sin(3 * i)), [N]),
            ent: t(be, randn(N, 0.3, 12).map((v) => Math.abs(v) + 1), [N]),
            adv: t(be, randn(B, 1, 13), [B]),
            mask: t(be, Float32Array.from({ length: N }, (_, i) => Number(i % T < T - (i / T) % 100)), [N]),
          };
          const dlp = be.zeros([N]), dent = be.zeros([N]), stats = be.zeros([11]);
          return () => be.grpoLoss(dlp, dent, stats, lp, tensors.old, tensors.ref, tensors.roll, tensors.ent, tensors.adv, tensors.mask, o);
        },
      },
    ],
  };
}

export function kernelCases(mode: Mode): Case[] {
  if (mode.quick)
    return [sampleCase(8, 32000), sampleCase(4, 151936), logprobCase(256, 8000), linearCase(256, 128, 8000), linearCase(256, 128, 8000, true, 0.5), linearGrpoCase(256, 128, 8000), grpoCase(16, 256)];
  if (!mode.full) return [sampleCase(64, 32000), sampleCase(64, 32000, true), logprobCase(1024, 32000), linearCase(512, 512, 32000, false), linearCase(512, 512, 32000), linearCase(512, 512, 32000, true, 0.5), linearGrpoCase(512, 512, 32000), linearGrpoCase(512, 512, 32000, 0.5), grpoCase(64, 1024)];
  return [
    sampleCase(64, 32000),
    sampleCase(64, 32000, true),
    sampleCase(256, 32000),
    sampleCase(64, 151936),
    sampleCase(256, 151936),
    logprobCase(4096, 32000),
    linearCase(4096, 512, 32000, false),
    linearCase(4096, 512, 32000),
    linearCase(4096, 512, 32000, true, 0.5),
    linearCase(4096, 1024, 32000),
    linearGrpoCase(4096, 512, 32000),
    grpoCase(64, 1024),
  ];
}

function floorNote(c: Case, seconds: number, f: Floors): string {
  const tb = c.bytes / f.bandwidth, tf = c.flops / f.sgemm;
  const floor = Math.max(tb, tf);
  const what = tf > tb ? `${(c.flops / 1e9).toFixed(1)} GFLOP @ ${(f.sgemm / 1e9).toFixed(0)} GFLOP/s` : `${(c.bytes / 1e6).toFixed(1)} MB @ ${(f.bandwidth / 1e9).toFixed(0)} GB/s`;
  const ms = floor * 1e3;
  return `floor ${ms < 1 ? ms.toFixed(3) : ms.toFixed(1)} ms (${what}); ${(seconds / floor).toFixed(1)}x floor`;
}

// ---- peak memory in a fresh process ----------------------------------------------------------

function rssStatus(): { rss: number; hwm: number } {
  const s = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Child entry: allocate inputs of one case/impl, run it once, print the extra peak bytes. */
function memChild(mode: Mode, caseName: string, implName: string): void {
  const c = kernelCases(mode).find((x) => x.name === caseName);
  const impl = c?.impls.find((x) => x.impl === implName);
  if (!c || !impl) throw new Error(`no case ${caseName} / ${implName}`);
  const fn = impl.setup(new CpuBackend());
  if (typeof fn === "string") throw new Error(fn);
  try {
    writeFileSync("/proc/self/clear_refs", "5"); // reset VmHWM to the current RSS
  } catch {
    /* older kernels: the peak then also covers setup */
  }
  const before = rssStatus().rss;
  fn();
  process.stdout.write(JSON.stringify({ peakBytes: Math.max(0, rssStatus().hwm - before) }) + "\n");
}

function measureMemory(mode: Mode, caseName: string, implName: string): number | undefined {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, "--mem-child", JSON.stringify({ mode, caseName, implName })], { encoding: "utf8", maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    process.stderr.write(`memory measurement failed for ${caseName} / ${implName}: ${r.stderr.split("\n").slice(0, 3).join(" ")}\n`);
    return undefined;
  }
  return (JSON.parse(r.stdout.trim().split("\n").pop()!) as { peakBytes: number }).peakBytes;
}

// ---- driver -------------------------------------------------------------------------------------

export async function runKernelsBench(ctx: BenchContext, opts: KernelsBenchOptions = {}): Promise<void> {
  const { torch = true, mem = true } = opts;
  const mode: Mode = { quick: ctx.quick, full: ctx.full };
  const [minTime, maxTime] = timeWindow(ctx);
  const be = new CpuBackend();
  ctx.progress("floors: stream bandwidth and sgemm speed");
  const { floors, streamSeconds } = measureFloors(be);
  ctx.row({ name: "floor: stream out = a + b, 3 x 128 MiB", impl: "anvil cpu", seconds: streamSeconds, gbps: floors.bandwidth / 1e9, note: "the bandwidth every row's floor uses" });
  ctx.row({ name: "floor: sgemm on the model's shapes", impl: `anvil ${floors.gemm}`, seconds: NaN, gflops: floors.sgemm / 1e9, note: "the FLOP rate every row's floor uses" });

  for (const c of kernelCases(mode)) {
    if (opts.only && !c.name.includes(opts.only)) continue;
    for (const impl of c.impls) {
      const fn = impl.setup(be);
      if (typeof fn === "string") {
        ctx.row({ name: c.name, impl: impl.impl, seconds: NaN, note: `skipped: ${fn}` });
        continue;
      }
      ctx.progress(`${c.name} ${impl.impl}`);
      fn(); // warm-up (page faults, thread pools)
      const seconds = timeIt(fn, minTime, maxTime);
      ctx.row({
        name: c.name,
        impl: impl.impl,
        seconds,
        gflops: c.flops ? c.flops / seconds / 1e9 : undefined,
        gbps: c.flops ? undefined : c.bytes / seconds / 1e9,
        peakBytes: mem ? measureMemory(mode, c.name, impl.impl) : undefined,
        note: floorNote(c, seconds, floors),
      });
    }
    if (torch && c.torch) {
      ctx.progress(`${c.name} PyTorch peer`);
      for (const r of runTorch("kernels.py", { ...c.torch, minTime, maxTime, mem })) {
        ctx.row({ ...r, name: c.name, gflops: c.flops ? c.flops / r.seconds / 1e9 : undefined, gbps: c.flops ? undefined : c.bytes / r.seconds / 1e9, note: [r.note, floorNote(c, r.seconds, floors)].filter(Boolean).join("; ") });
      }
    }
  }
}

// The peak-memory child: node dist/bench/kernels.js --mem-child '{"mode", "caseName", "implName"}'
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const child = argv.indexOf("--mem-child");
  if (child < 0) {
    process.stderr.write("bench/kernels: run the suite with `anvil bench kernels`\n");
    process.exitCode = 2;
  } else {
    const { mode, caseName, implName } = JSON.parse(argv[child + 1]) as { mode: Mode; caseName: string; implName: string };
    memChild(mode, caseName, implName);
  }
}
