// The RL loop, one readable pipeline per step:
//   prompts -> rollouts (G per prompt) -> rewards -> Anchor -> filter/refill -> advantages
//   -> policy update(s) (fused GRPO loss) -> metrics, checkpoint, report.
import { EventEmitter } from "node:events";
import type { Backend } from "../backend/backend.js";
import type { Model, Trainable } from "../model/model.js";
import type { Instance } from "../tasks/types.js";
import { completionFor } from "../tasks/types.js";
import { allReduceRecord, SoloCollective, type Collective } from "../distributed/collective.js";
import { shareOf } from "../distributed/share.js";
import { computeAdvantages, groupHasZeroStd, normaliseOverRanks } from "./advantages.js";
import { anchorsForGroup } from "./anchor.js";
import { packBatch, type Sequence } from "./batch.js";
import { Curriculum } from "./curriculum.js";
import { keepGroup } from "./filter.js";
import type { TrainOptions } from "./options.js";
import { policyGradient, scoreTokens, type GrpoStats } from "./step.js";
import type { Policy, RolloutSource } from "./policy.js";
import type { Scored, Scorer } from "./scoring.js";
import { PURPOSE, mixSeed, uniform } from "../util/seed.js";

/** One rollout with its verdict. */
export interface Rollout {
  instance: Instance;
  group: number;
  completionIds: number[];
  rolloutLogprobs: number[];
  text: string;
  finish: string;
  anchor: boolean;
  score: Scored;
}

export interface StepMetrics {
  step: number;
  lr: number;
  loss: number;
  reward_mean: number;
  reward_std: number;
  acc: number;
  acc_answerable: number;
  acc_unanswerable: number;
  abstain_rate: number;
  format_rate: number;
  frac_reward_zero_std: number;
  anchor_frac: number;
  /** Groups where Anchor applied but the ground truth was longer than maxNewTokens. */
  anchor_too_long: number;
  groups_filtered: number;
  kl: number;
  entropy: number;
  clip_low: number;
  clip_high: number;
  clip_dual: number;
  ratio_min: number;
  ratio_max: number;
  grad_norm: number;
  completion_len_mean: number;
  completion_len_max: number;
  depth_max: number;
  /** Scoring calls this step on which a reward term failed (it counted 0): every generated
   * rollout (also those filtered out or replaced by an anchor) and every anchor trajectory. */
  reward_failures: number;
  tokens_per_s: number;
  time_rollout_s: number;
  time_scoring_s: number;
  time_update_s: number;
  [k: string]: number;
}

export class NonFiniteLossError extends Error {
  override name = "NonFiniteLossError";
  constructor(readonly step: number, what: string) {
    super(`${what} is not finite at step ${step}; training stopped, parameters were not updated`);
  }
}

/**
 * The frozen KL reference: a separate model (full fine-tuning), or the policy's own base with
 * its adapter disabled (LoRA: no second copy of the weights).
 */
export interface Reference {
  model: Model;
  disableAdapter: boolean;
}

export class Trainer extends EventEmitter {
  readonly curriculum: Curriculum;
  private ref: Reference | null;

  constructor(
    readonly opts: TrainOptions,
    readonly policy: Policy,
    readonly scorer: Scorer,
    /** Prompt source: instance i of step s (generated or from a dataset). */
    readonly prompts: (step: number, i: number, depth: number) => Instance,
    ref: Reference | null,
    /** Data parallel: this process's rank among the ranks sharing each step's groups. */
    readonly collective: Collective = new SoloCollective(),
    /** Where rollouts come from (default: the policy, in process). */
    readonly rolloutSource: RolloutSource = policy,
  ) {
    super();
    this.curriculum = new Curriculum(opts.curriculum, opts.minDepth, opts.maxDepth, opts.steps);
    this.ref = ref;
  }

  get backend(): Backend {
    return this.policy.model.backend;
  }

  /** Generates G rollouts for each instance and scores them. Instance i is group
   * `firstGroup + i` of the round across all ranks: its samples depend on that, not on the rank. */
  async rollouts(instances: Instance[], step: number, round: number, firstGroup = 0): Promise<Rollout[]> {
    const o = this.opts;
    const G = o.groupSize;
    const prompts = instances.flatMap((inst) => Array.from({ length: G }, () => inst));
    const gens = await this.rolloutSource
      .generate(
        prompts.map((p) => p.prompt),
        {
          maxNewTokens: o.maxNewTokens,
          sampling: { temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP },
          seed: mixSeed(o.seed, step, round, PURPOSE.sample),
          rowKeys: prompts.map((_, k) => firstGroup * G + k),
        },
      )
      .catch((e: Error) => {
        throw /NaN|not finite|-inf/i.test(e.message) ? new NonFiniteLossError(step + 1, `the rollout logits (${e.message})`) : e;
      });
    const t0 = performance.now();
    const scores = await this.scorer.score(prompts, gens.map((g) => g.text));
    this.scoringSeconds += (performance.now() - t0) / 1000;
    return gens.map((g, k) => ({
      instance: prompts[k],
      group: Math.floor(k / G),
      completionIds: g.tokens,
      rolloutLogprobs: g.logprobs,
      text: g.text,
      finish: g.finishReason,
      anchor: false,
      score: scores[k],
    }));
  }

  private scoringSeconds = 0;

  /**
   * Replaces rollouts by ground-truth trajectories per the Anchor settings. Returns how many
   * were injected and how many groups qualified but were skipped because the trajectory is
   * longer than maxNewTokens (a completion the sampler could never have produced).
   */
  async applyAnchor(groups: Rollout[][], step: number, round = 0, firstGroup = 0): Promise<{ injected: number; tooLong: number; failures: number }> {
    const o = this.opts;
    let injected = 0;
    let tooLong = 0;
    let failures = 0;
    const cfg = { mode: o.anchor, count: o.anchorCount, anneal: o.anchorAnneal, annealSteps: o.anchorAnnealSteps || o.steps };
    for (let g = 0; g < groups.length; g++) {
      const grp = groups[g];
      const k = anchorsForGroup(cfg, grp.map((r) => r.score.correct), step, uniform(o.seed, step, round, firstGroup + g, PURPOSE.anchor));
      if (k === 0) continue;
      const inst = grp[0].instance;
      const text = completionFor(inst);
      const ids = this.policy.encodeCompletion(text);
      if (ids.length > o.maxNewTokens) {
        tooLong++;
        continue;
      }
      const [score] = await this.scorer.score([inst], [text]);
      if (score.failure) failures++;
      for (let j = grp.length - k; j < grp.length; j++) {
        // The ground truth was not sampled: no rollout log-probs (truncated IS uses old = rollout).
        grp[j] = { ...grp[j], completionIds: ids, rolloutLogprobs: [], text, finish: "anchor", anchor: true, score };
        injected++;
      }
    }
    return { injected, tooLong, failures };
  }

  /**
   * Runs one training step and returns its metrics. Data parallel: this rank generates, scores
   * and backpropagates its share of the step's groups; the loss is normalised by the whole
   * batch and gradients are summed over ranks before the optimizer, so every rank makes the
   * single-process update; the metrics returned are the whole batch's, on every rank.
   */
  async step(step: number): Promise<StepMetrics> {
    let lr = 0;
    const o = this.opts;
    const G = o.groupSize;
    const dp = this.collective;
    // Round k's prompts are indices [k*P, (k+1)*P); this rank owns the block `mine` of each.
    const mine = shareOf(o.promptsPerStep, dp.rank, dp.worldSize);
    this.scoringSeconds = 0;
    const tRoll0 = performance.now();

    // 1. prompts and rollouts, refilling groups the filter drops
    const kept: Rollout[][] = [];
    let filtered = 0;
    let zeroStd = 0;
    let allGroups = 0;
    let anchorTooLong = 0;
    let anchorFailures = 0;
    const generated: Rollout[] = [];
    for (let round = 0; round <= o.maxRefills && kept.length < mine.count; round++) {
      const need = mine.count - kept.length;
      const insts = Array.from({ length: need }, (_, i) => {
        const idx = round * o.promptsPerStep + mine.start + i;
        return this.prompts(step, idx, this.curriculum.depth(o.seed, step, idx));
      });
      const rolls = await this.rollouts(insts, step, round, mine.start);
      generated.push(...rolls);
      const groups: Rollout[][] = [];
      for (let g = 0; g < need; g++) groups.push(rolls.slice(g * G, (g + 1) * G));
      // frac_reward_zero_std describes the policy: its own samples, before anchors replace any.
      for (const grp of groups) {
        allGroups++;
        if (groupHasZeroStd(grp.map((r) => r.score.reward))) zeroStd++;
      }
      const anchored = await this.applyAnchor(groups, step, round, mine.start);
      anchorTooLong += anchored.tooLong;
      anchorFailures += anchored.failures;
      for (const grp of groups) {
        const rewards = grp.map((r) => r.score.reward);
        const last = round === o.maxRefills;
        if (keepGroup(o.filter, rewards, grp.map((r) => r.score.correct)) || (last && kept.length < 1)) kept.push(grp);
        else filtered++;
        if (kept.length >= mine.count) break;
      }
    }
    const rollSeconds = (performance.now() - tRoll0) / 1000 - this.scoringSeconds;

    // 2. advantages (per group; reinforce++ also normalises over the whole batch)
    const flat = kept.flat();
    const rewards = flat.map((r) => r.score.reward);
    const adv =
      o.advantage === "reinforce++" ? await normaliseOverRanks(computeAdvantages(rewards, G, "dr-grpo"), (v) => dp.allReduce(v)) : computeAdvantages(rewards, G, o.advantage);

    // 3. update
    const tUp0 = performance.now();
    const seqs: Sequence[] = flat.map((r) => ({
      promptIds: this.policy.encodePrompt(r.instance.prompt),
      completionIds: r.completionIds,
      rolloutLogprobs: r.rolloutLogprobs,
    }));
    const batch = packBatch(seqs, this.policy.padId);
    const [sequences, tokens] = await dp.allReduce(Float64Array.of(batch.B, batch.tokens));
    const model = this.policy.model;
    const mbs = this.policy.microBatch;
    const useRollout = o.tisCap > 0;
    // PPO "old" log-probs: a forward pass is needed only when the policy moves between updates
    // (mu > 1) or for truncated IS; with one update per batch the current ones serve (null).
    // Anchor rows have no sampler log-probs: their truncated-IS weight is made exactly 1 by
    // using the old log-probs there.
    const old = o.numIterations > 1 || useRollout ? (await scoreTokens(model, batch, o.temperature || 1, mbs)).logprob : null;
    if (old && useRollout) fillMissingRollout(batch, seqs, old);
    const refLp = this.ref && o.beta > 0 ? (await scoreTokens(this.ref.model, batch, o.temperature || 1, mbs, { disableAdapter: this.ref.disableAdapter })).logprob : null;
    let stats: GrpoStats | null = null;
    let gradNorm = 0;
    for (let it = 0; it < o.numIterations; it++) {
      model.zeroGrads();
      const local = await policyGradient(
        model,
        { batch, oldLogprob: old, refLogprob: refLp, advantages: Float32Array.from(adv), useRolloutLogprob: useRollout, wholeBatch: { sequences, tokens } },
        {
          epsLow: o.epsLow,
          epsHigh: o.epsHigh,
          dualClip: o.dualClip,
          beta: refLp ? o.beta : 0,
          kl: o.kl,
          entropyCoef: o.entropyCoef,
          tisCap: o.tisCap,
          aggregation: o.lossAggregation,
          maxCompletionLength: o.maxNewTokens,
        },
        o.temperature || 1,
        mbs,
      );
      // Each rank's loss and stats are its share of the whole batch's: they sum.
      const st = await allReduceRecord(dp, local, STAT_OPS);
      if (!Number.isFinite(st.loss)) throw new NonFiniteLossError(step + 1, "the loss");
      await dp.allReduceTensors(model.backend, [...model.grads.keys()].sort().map((name) => model.grads.get(name)!));
      const upd = await this.policy.optimizer!.update();
      if (upd.skipped) throw new NonFiniteLossError(step + 1, "the gradient norm");
      gradNorm = upd.gradNorm;
      lr = upd.lr;
      if (!(await paramsFinite(model.trainable))) throw new NonFiniteLossError(step + 1, "the parameter norm after the update");
      if (it === 0) stats = st;
    }
    const upSeconds = (performance.now() - tUp0) / 1000;

    // 4. metrics over the policy's own rollouts (anchors excluded) of every generated group,
    // summed over ranks (times: the slowest rank's)
    const own = generated.filter((r) => !r.anchor);
    const count = (rs: Rollout[], f: (r: Rollout) => boolean) => rs.filter(f).length;
    const lens = own.map((r) => r.completionIds.length);
    const ans = own.filter((r) => r.instance.answerable);
    const unans = own.filter((r) => !r.instance.answerable);
    const n = await allReduceRecord(
      dp,
      {
        kept: rewards.length,
        reward: sum(rewards),
        own: own.length,
        correct: count(own, (r) => r.score.correct),
        answerable: ans.length,
        answerable_correct: count(ans, (r) => r.score.correct),
        unanswerable: unans.length,
        unanswerable_correct: count(unans, (r) => r.score.correct),
        abstained: count(own, (r) => r.score.abstained),
        format: count(own, (r) => r.score.format),
        groups: allGroups,
        zero_std: zeroStd,
        anchors: count(flat, (r) => r.anchor),
        anchor_too_long: anchorTooLong,
        filtered,
        len_sum: sum(lens),
        len_max: Math.max(0, ...lens),
        reward_failures: count(generated, (r) => !!r.score.failure) + anchorFailures,
        time_rollout_s: rollSeconds,
        time_scoring_s: this.scoringSeconds,
        time_update_s: upSeconds,
      },
      { len_max: "max", time_rollout_s: "max", time_scoring_s: "max", time_update_s: "max" },
    );
    const ratio = (a: number, b: number) => (b ? a / b : 0);
    const rewardMean = ratio(n.reward, n.kept);
    const [rewardSs] = await dp.allReduce(Float64Array.of(sum(rewards.map((r) => (r - rewardMean) ** 2))));
    const s = stats!;
    const m: StepMetrics = {
      step: step + 1,
      lr,
      loss: s.loss,
      reward_mean: rewardMean,
      reward_std: Math.sqrt(ratio(rewardSs, n.kept)),
      acc: ratio(n.correct, n.own),
      acc_answerable: ratio(n.answerable_correct, n.answerable),
      acc_unanswerable: ratio(n.unanswerable_correct, n.unanswerable),
      abstain_rate: ratio(n.abstained, n.own),
      format_rate: ratio(n.format, n.own),
      frac_reward_zero_std: ratio(n.zero_std, n.groups),
      anchor_frac: ratio(n.anchors, n.kept),
      anchor_too_long: n.anchor_too_long,
      groups_filtered: n.filtered,
      kl: s.klMean,
      entropy: s.entropyMean,
      clip_low: s.clipLowFrac,
      clip_high: s.clipHighFrac,
      clip_dual: s.dualClipFrac,
      ratio_min: s.ratioMin,
      ratio_max: s.ratioMax,
      grad_norm: gradNorm,
      completion_len_mean: ratio(n.len_sum, n.own),
      completion_len_max: n.len_max,
      depth_max: this.curriculum.ceiling(step),
      reward_failures: n.reward_failures,
      tokens_per_s: n.len_sum / Math.max(1e-9, n.time_rollout_s),
      time_rollout_s: n.time_rollout_s,
      time_scoring_s: n.time_scoring_s,
      time_update_s: n.time_update_s,
    };
    this.curriculum.update(m.acc);
    this.emit("samples", step + 1, own.slice(0, o.samplesPerStep));
    return m;
  }
}

/** How the GRPO loss statistics combine over ranks: shares of the batch sum; extremes. */
const STAT_OPS = { ratioMin: "min", ratioMax: "max" } as const satisfies Partial<Record<keyof GrpoStats, "min" | "max">>;

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Whether every trained parameter is finite (one reduction, one scalar read). */
async function paramsFinite(model: Trainable): Promise<boolean> {
  const be = model.backend;
  const acc = be.zeros([1]);
  try {
    for (const p of model.params.values()) be.sumSquares(acc, p);
    return Number.isFinite((await be.read(acc))[0]);
  } finally {
    acc.dispose();
  }
}

/** Where a row has no sampler log-probs (anchors), use the old log-probs: IS weight 1. */
function fillMissingRollout(batch: { T: number; rolloutLogprobs: Float32Array; mask: Float32Array }, seqs: Sequence[], old: Float32Array): void {
  seqs.forEach((s, b) => {
    if (s.rolloutLogprobs && s.rolloutLogprobs.length === s.completionIds.length) return;
    for (let t = b * batch.T; t < (b + 1) * batch.T; t++) if (batch.mask[t]) batch.rolloutLogprobs[t] = old[t];
  });
}
