// One DPO step as `anvil dpo` takes it (preference-train.ts preferenceStep): P pairs, their
// chosen and rejected completions packed into one (2P, T) batch, scored and differentiated by the
// fused linear sequence loss (logits never exist; one pass per block of whole pairs, the sigmoid
// loss against cached reference log-probs in between), the gradient back through the model, one AdamW update with grad-norm clipping. The peer is the
// same step in plain PyTorch (bench/torch/preference.py: the decoder of model.py, full logits,
// log_softmax + gather, autograd, torch.optim.AdamW) on the same config and the same token ids,
// measured in the same run.
//
// Throughput is in preference-pair tokens per second: the prompt and completion tokens of both
// sides of every pair (padding excluded), the tokens a step reads.
//
//   anvil bench preference [--quick | --full]
import { CpuBackend } from "../src/backend/cpu.js";
import { presetConfig } from "../src/model/init.js";
import { Model } from "../src/model/model.js";
import { AdamW } from "../src/model/optim.js";
import type { ModelConfig } from "../src/model/types.js";
import type { TokenPair } from "../src/rl/preference-data.js";
import { preferenceStep } from "../src/rl/preference-train.js";
import { runTorch, timeItAsync, timeWindow, type BenchContext } from "./harness.js";
import { BENCH_CONFIG, randomIds, randomWeights, trainFlopsPerToken } from "./model.js";

/** Pairs per step and their lengths in tokens (every pair alike: the timing depends on lengths only). */
export interface PairShape {
  pairs: number;
  prompt: number;
  chosen: number;
  rejected: number;
}

export interface PreferenceBenchOptions {
  config: ModelConfig;
  shape: PairShape;
  torch?: boolean;
  threads?: number;
}

/** The pairs' token ids, deterministic: the PyTorch peer receives the same ones. */
export function benchPairs(V: number, s: PairShape): TokenPair[] {
  return Array.from({ length: s.pairs }, (_, i) => {
    const promptIds = Array.from(randomIds(s.prompt, V, 100 + i));
    return {
      chosen: { promptIds, completionIds: Array.from(randomIds(s.chosen, V, 200 + i)) },
      rejected: { promptIds, completionIds: Array.from(randomIds(s.rejected, V, 300 + i)) },
      rewardGap: 1,
    };
  });
}

const pairTokens = (s: PairShape) => s.pairs * (2 * s.prompt + s.chosen + s.rejected);

export async function runPreferenceBench(ctx: BenchContext, opts: PreferenceBenchOptions): Promise<void> {
  const { config: c, shape: s } = opts;
  const [minTime, maxTime] = timeWindow(ctx);
  const be = new CpuBackend(opts.threads !== undefined ? { threads: opts.threads } : {});
  const impl = `anvil cpu (${be.native.buildInfo().threads} threads)`;
  const model = Model.fromWeights(be, c, randomWeights(c));
  const params = (model.numParameters / 1e6).toFixed(1);
  const label = `${params}M L=${c.numLayers} H=${c.hiddenSize} V=${c.vocabSize}`;
  const name = `DPO step ${label} ${s.pairs} pairs P=${s.prompt} C=${s.chosen}/${s.rejected}`;
  const pairs = benchPairs(c.vocabSize, s);
  // Reference log-probs are a cached table in a run: constants here (the policy's own would do too).
  const ref = { chosen: pairs.map(() => -s.chosen * Math.log(c.vocabSize)), rejected: pairs.map(() => -s.rejected * Math.log(c.vocabSize)) };
  const optimizer = new AdamW(model.trainable, { lr: 1e-5, beta1: 0.9, beta2: 0.99, weightDecay: 0, warmupSteps: 0, schedule: "constant", totalSteps: 1, minLr: 0, maxGradNorm: 1 });
  const indices = pairs.map((_, i) => i);
  const T = s.prompt + Math.max(s.chosen, s.rejected);
  const flops = trainFlopsPerToken(c, T) * 2 * s.pairs * T; // the padded batch is what is computed
  const tokens = pairTokens(s);
  let step = 0;
  ctx.progress(name);
  const t = await timeItAsync(async () => {
    await preferenceStep(model, optimizer, pairs, ref, indices, { loss: "sigmoid", beta: 0.1, labelSmoothing: 0, simpoGamma: 0, microBatch: 2 * s.pairs, padId: 0 }, step++);
  }, minTime, maxTime);
  model.freeGrads();
  ctx.row({ name, impl, seconds: t, gflops: flops / t / 1e9, note: `${(tokens / t).toFixed(0)} pair tok/s, ${(s.pairs / t).toFixed(1)} pairs/s; one packed pass, fused sequence loss (a pass per block of pairs)` });
  optimizer.dispose();
  model.dispose();
  if (opts.torch ?? true) {
    ctx.progress(`${name}: PyTorch peer`);
    const cfg = { ...c, raw: undefined };
    const ids = pairs.map((p) => ({ prompt: p.chosen.promptIds, chosen: p.chosen.completionIds, rejected: p.rejected.completionIds }));
    for (const r of runTorch("preference.py", { config: cfg, name, pairs: ids, ref, minTime, maxTime, flops, tokens }, opts.threads ?? 2)) ctx.row(r);
  }
}

/** The tiny preset (the quick start's model) and the ~25M-parameter decoder of bench/model.ts. */
export async function runPreferenceBenchSuite(ctx: BenchContext): Promise<void> {
  const tiny = presetConfig("tiny", 1024, 0);
  if (ctx.quick) {
    await runPreferenceBench(ctx, { config: tiny, shape: { pairs: 4, prompt: 32, chosen: 16, rejected: 12 } });
    return runPreferenceBench(ctx, { config: { ...BENCH_CONFIG, numLayers: 2 }, shape: { pairs: 2, prompt: 32, chosen: 16, rejected: 12 } });
  }
  const shape: PairShape = ctx.full ? { pairs: 8, prompt: 128, chosen: 128, rejected: 96 } : { pairs: 8, prompt: 64, chosen: 48, rejected: 32 };
  await runPreferenceBench(ctx, { config: tiny, shape });
  await runPreferenceBench(ctx, { config: BENCH_CONFIG, shape: ctx.full ? shape : { ...shape, pairs: 4 } });
}
