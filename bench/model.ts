// End-to-end decoder throughput on the CPU backend: a training step (forward, fused LM-head
// cross-entropy, backward), an inference-only scoring forward, and batched KV-cache generation,
// with a plain-PyTorch implementation of the same architecture (autograd, 2 threads) as the peer.
//
// FLOPs per training token ~ 6 * (non-embedding params + LM head) + attention (12 * L * T/2 * qD);
// forward alone is a third of that.
//
//   anvil bench model [--quick]
import { CpuBackend } from "../src/backend/cpu.js";
import { decoderGemmShapes, measureGemm } from "../src/backend/gemm.js";
import { generate } from "../src/model/generate.js";
import { presetConfig } from "../src/model/init.js";
import { Model } from "../src/model/model.js";
import { parameterShapes, type ModelConfig } from "../src/model/types.js";
import { batchFromTargets } from "../src/rl/batch.js";
import { scoreTokens, supervisedGradient } from "../src/rl/step.js";
import { peakRssBytes, runTorch, timeItAsync, timeWindow, type BenchContext } from "./harness.js";

export interface ModelBenchOptions {
  config?: ModelConfig;
  /** Training micro-batch (default B=4, T=256). */
  train?: { B: number; T: number };
  /** Generation batch (default 8 prompts of 32 tokens, 32 new tokens). */
  gen?: { B: number; prompt: number; newTokens: number };
  torch?: boolean;
  minTime?: number;
  threads?: number;
}

/** A Qwen3-style model of ~30M parameters: big enough to be matmul-bound, small enough here. */
export const BENCH_CONFIG: ModelConfig = {
  architecture: "qwen3",
  modelType: "qwen3",
  vocabSize: 8192,
  hiddenSize: 512,
  intermediateSize: 1536,
  numLayers: 8,
  numHeads: 8,
  numKvHeads: 4,
  headDim: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  maxPositionEmbeddings: 4096,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: true,
  bosTokenId: null,
  eosTokenIds: [],
  raw: {},
};

export function randomWeights(c: ModelConfig): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  let s = 12345;
  for (const [name, shape] of parameterShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (shape.length === 1) a.fill(1);
    else
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        a[i] = (s / 2147483648 - 1) * 0.05;
      }
    w.set(name, a);
  }
  return w;
}

export function randomIds(n: number, V: number, seed: number): Int32Array {
  const a = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s % V;
  }
  return a;
}

/** Training FLOPs per token (forward + backward). */
export function trainFlopsPerToken(c: ModelConfig, T: number): number {
  const qD = c.numHeads * c.headDim;
  const kvD = c.numKvHeads * c.headDim;
  const perLayer = c.hiddenSize * (2 * qD + 2 * kvD) + 3 * c.hiddenSize * c.intermediateSize;
  const matmulParams = c.numLayers * perLayer + c.vocabSize * c.hiddenSize;
  const attention = c.numLayers * 2 * 2 * (T / 2) * qD; // QK^T and PV, causal half
  return 6 * matmulParams + 3 * attention;
}

export async function runModelBench(ctx: BenchContext, opts: ModelBenchOptions = {}): Promise<void> {
  const c = opts.config ?? BENCH_CONFIG;
  const { B, T } = opts.train ?? { B: 4, T: 256 };
  const gen = opts.gen ?? { B: 8, prompt: 32, newTokens: 32 };
  const [windowMin, maxTime] = timeWindow(ctx);
  const minTime = opts.minTime ?? windowMin;
  const be = new CpuBackend(opts.threads !== undefined ? { threads: opts.threads } : {});
  const impl = `anvil cpu (${be.native.buildInfo().threads} threads)`;
  const model = Model.fromWeights(be, c, randomWeights(c));
  const ids = randomIds(B * T, c.vocabSize, 1);
  const targets = randomIds(B * T, c.vocabSize, 2);
  const N = B * T;
  const flops = trainFlopsPerToken(c, T) * N;
  const label = `L=${c.numLayers} H=${c.hiddenSize} V=${c.vocabSize}`;
  // The sgemm's own speed on this model's products, same run: what a step could reach.
  ctx.progress(`sgemm peak on the shapes of ${label}`);
  const peak = measureGemm(be.native, decoderGemmShapes(c, N))[be.native.gemmSelected()];
  ctx.row({ name: `sgemm on the MLP products of ${label} N=${N}`, impl: `anvil ${be.native.gemmSelected()}`, seconds: NaN, gflops: peak, note: "the peak the train step is measured against" });

  const batch = batchFromTargets(ids, targets, B, T);
  for (const checkpointing of [false, true]) {
    ctx.progress(`train step ${label}${checkpointing ? " (checkpointing)" : ""}`);
    model.gradientCheckpointing = checkpointing;
    const t = await timeItAsync(async () => {
      await supervisedGradient(model, batch, B);
    }, minTime, maxTime);
    ctx.row({
      name: `train step ${label} B=${B} T=${T}${checkpointing ? " (checkpointing)" : ""}`,
      impl,
      seconds: t,
      gflops: flops / t / 1e9,
      peakBytes: model.activationBytes(B, T, { checkpointing }),
      note: `${(N / t).toFixed(0)} tok/s; ${((100 * flops) / t / 1e9 / peak).toFixed(0)}% of the sgemm peak; peak mem = activations`,
    });
  }
  {
    ctx.progress(`score ${label}`);
    const t = await timeItAsync(async () => {
      await scoreTokens(model, batch, 1, B);
    }, minTime, maxTime);
    ctx.row({ name: `score (noGrad fwd + fused logprob) ${label} B=${B} T=${T}`, impl, seconds: t, gflops: flops / 3 / t / 1e9, note: `${(N / t).toFixed(0)} tok/s` });
  }
  {
    const prompts = Array.from({ length: gen.B }, (_, b) => Array.from(randomIds(gen.prompt, c.vocabSize, 10 + b)));
    const sampling = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    ctx.progress(`generate ${label}`);
    const t = await timeItAsync(async () => {
      await generate(model, prompts, { maxNewTokens: gen.newTokens, sampling, seed: 1, eosIds: [] });
    }, minTime, maxTime);
    ctx.row({
      name: `generate ${label} B=${gen.B} prompt=${gen.prompt} new=${gen.newTokens}`,
      impl,
      seconds: t,
      note: `${((gen.B * gen.newTokens) / t).toFixed(0)} new tok/s`,
      peakBytes: peakRssBytes(),
    });
  }
  model.dispose();
  if (opts.torch ?? true) {
    ctx.progress("PyTorch peer");
    const cfg = { ...c, raw: undefined };
    for (const r of runTorch("model.py", { config: cfg, B, T, gen, minTime, flops }, opts.threads ?? 2)) ctx.row(r);
  }
}

/** The tiny preset (the quick start's model) and the ~30M config, each next to PyTorch. */
export async function runModelBenchSuite(ctx: BenchContext): Promise<void> {
  if (ctx.quick)
    return runModelBench(ctx, { config: { ...BENCH_CONFIG, numLayers: 2, vocabSize: 2048 }, train: { B: 2, T: 64 }, gen: { B: 4, prompt: 8, newTokens: 8 }, minTime: 0.2 });
  const tiny = presetConfig("tiny", 1024, 0);
  // Decode at the quick start's rollout shape (64 rollouts, ~250-token prompts, ~300-token
  // completions), where attention over the KV cache is half of the time.
  await runModelBench(ctx, { config: tiny, train: { B: 16, T: 256 }, gen: { B: 64, prompt: 256, newTokens: 256 } });
  await runModelBench(ctx, {});
}
