// SFT warm start: teach the policy the output format and the reasoning style on
// ground-truth traces, so RL starts from a policy that sometimes succeeds.
import { AdamW, type OptimizerState } from "../model/optim.js";
import { generate } from "../tasks/index.js";
import { arithmeticSheet, linkSheet } from "../tasks/sheet.js";
import type { Instance, TaskName } from "../tasks/types.js";
import { completionFor } from "../tasks/types.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import { packBatch } from "./batch.js";
import type { Policy } from "./policy.js";
import { supervisedGradient } from "./step.js";
import { NonFiniteLossError } from "./trainer.js";

export interface SftOptions {
  steps: number;
  lr: number;
  batch: number;
  /** Instance j of step s. */
  instances: (step: number, j: number) => Instance;
  /** Called after every step; may be async (e.g. a held-out eval). Returning true stops the run.
   * `optimizer` reads the AdamW state, for a checkpoint a later run can continue from. */
  onStep?: (step: number, loss: number, lr: number, optimizer: () => Promise<OptimizerState>) => void | boolean | Promise<void | boolean>;
  /** Continue a run killed after `step` steps, from its optimizer state (the model's weights are the caller's to load). */
  from?: { step: number; optimizer: OptimizerState };
}

/**
 * The SFT stream of a task, a function of the seed and the step (the experiments use seed 1,
 * `anvil train` its own): `items` ground-truth items per step over depths [minDepth, maxDepth],
 * then, on GraphLA, `sheets` arithmetic sheets and `links` link sheets (tasks/sheet.ts; GraphLI's
 * traces compute nothing and quote no partner).
 */
export function sftStream(task: TaskName, o: { seed: number; minDepth: number; maxDepth: number; items: number; sheets: number; links?: number; depthWeights?: number[] }): Pick<SftOptions, "batch" | "instances"> {
  // Depths drawn in proportion to depthWeights (one per depth from minDepth); uniform without.
  const weights = o.depthWeights ?? Array.from({ length: o.maxDepth - o.minDepth + 1 }, () => 1);
  if (weights.length !== o.maxDepth - o.minDepth + 1 || weights.some((w) => !Number.isInteger(w) || w < 0) || !weights.some((w) => w > 0))
    throw new RangeError(`depth weights ${weights.join(",")}: give ${o.maxDepth - o.minDepth + 1} non-negative integers, one per depth ${o.minDepth}-${o.maxDepth}`);
  const total = weights.reduce((a, b) => a + b, 0);
  const depthOf = (h: number): number => {
    let r = h % total, d = 0;
    while (r >= weights[d]!) r -= weights[d++]!;
    return o.minDepth + d;
  };
  const sheets = task === "graphla" ? o.sheets : 0;
  const links = task === "graphla" ? (o.links ?? 0) : 0;
  return {
    batch: o.items + sheets + links,
    instances: (s, j) =>
      j < o.items
        ? generate(task, { depth: depthOf(mixSeed(o.seed, s, j, PURPOSE.sft, 1)), seed: mixSeed(o.seed, s, j, PURPOSE.sft) })
        : j < o.items + sheets
          ? arithmeticSheet(mixSeed(o.seed, s, j, PURPOSE.sft, 2))
          : linkSheet(mixSeed(o.seed, s, j, PURPOSE.sft, 3)),
  };
}

export async function runSft(policy: Policy, o: SftOptions): Promise<number[]> {
  const model = policy.model;
  // A long warmup: at lr 6e-3 a 10-step one wrecked the induction init's
  // wiring in the first steps (GraphLI trace loss 1.82 at step 300, against 0.44 with 50;
  // results/sft-probes/li-psweep-induct-w10.txt, -w50.txt).
  const opt = new AdamW(model.trainable, { lr: o.lr, warmupSteps: Math.min(50, Math.floor(o.steps / 8)), schedule: "cosine", totalSteps: Math.max(1, o.steps), minLr: o.lr * 0.1, maxGradNorm: 1 });
  if (o.from) opt.loadState(o.from.optimizer);
  const losses: number[] = [];
  try {
    for (let s = o.from?.step ?? 0; s < o.steps; s++) {
      const insts = Array.from({ length: o.batch }, (_, j) => o.instances(s, j));
      const batch = packBatch(
        insts.map((inst) => ({ promptIds: policy.encodePrompt(inst.prompt), completionIds: policy.encodeCompletion(completionFor(inst)) })),
        policy.padId,
      );
      model.zeroGrads();
      const loss = await supervisedGradient(model, batch, policy.microBatch);
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(s + 1, "the SFT loss");
      const r = await opt.update();
      if (r.skipped) throw new NonFiniteLossError(s + 1, "the SFT gradient norm");
      losses.push(loss);
      if ((await o.onStep?.(s, loss, r.lr, () => opt.exportState())) === true) break;
    }
  } finally {
    opt.dispose();
    model.freeGrads();
  }
  return losses;
}
