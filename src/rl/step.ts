// The one log-prob path of Anvil: decoder forward -> fused linear log-prob + entropy (logits
// never exist in memory). Scoring (old / reference log-probs, `anvil score`) runs it without
// gradients. The policy update runs the one-pass fused linear GRPO loss (log-prob, entropy,
// loss and both LM-head gradients from one product of the logits per token block); SFT is the
// same op with advantage 1 at ratio 1 (dLogprob = -1/tokens). Preference losses (DPO & co.) run
// the fused linear sequence loss: one pass per block of whole pairs, each row's d loss / d (summed
// log-prob) fed to its completion tokens. The two-pass paths (forward, then the loss, then the
// linear log-prob backward, which makes the logits again) stay as the tests' reference. Gradient
// checkpointing is the model's setting (model.gradientCheckpointing), and with an adapter
// attached only the adapter is trained.
import { GRPO_STATS, type Backend, type GrpoLossOptions, type LinearGrpoLossOptions, type SegmentLossGrad, type Tensor } from "../backend/backend.js";
import type { ForwardOptions, Model } from "../model/model.js";
import { linearGrpoLossComposed } from "../backend/linear-grpo-composed.js";
import { linearLogprobComposed } from "../backend/linear-logprob-composed.js";
import { linearSequenceComposed } from "../backend/linear-sequence-composed.js";
import { gatherTokens, microBatches, rowSums, scatterTokens, type PackedBatch } from "./batch.js";

export type GrpoStats = Record<(typeof GRPO_STATS)[number], number>;

/**
 * Per-token log-probs and entropies of a packed batch under the model, (B*T) each, without
 * gradients (no training activations are kept). `disableAdapter` scores the base model alone:
 * the KL reference under LoRA.
 */
export async function scoreTokens(model: Model, batch: PackedBatch, temperature: number, microBatch: number, opts: { disableAdapter?: boolean } = {}): Promise<{ logprob: Float32Array; entropy: Float32Array }> {
  const be = model.backend;
  const N = batch.B * batch.T;
  const logprob = new Float32Array(N);
  const entropy = new Float32Array(N);
  for (const mb of microBatches(batch, microBatch)) {
    const { lp, ent, lse, targets, acts } = forwardLogprob(model, mb.batch, temperature, { noGrad: true, disableAdapter: opts.disableAdapter });
    scatterTokens(logprob, batch.T, mb, (await be.read(lp)) as Float32Array);
    scatterTokens(entropy, batch.T, mb, (await be.read(ent)) as Float32Array);
    for (const t of [lp, ent, lse, targets]) t.dispose();
    acts.dispose();
  }
  return { logprob, entropy };
}

function forwardLogprob(model: Model, mb: PackedBatch, temperature: number, opts: ForwardOptions = {}) {
  const be = model.backend;
  const n = mb.B * mb.T;
  const acts = model.forward(mb.ids, mb.B, mb.T, opts);
  const targets = be.upload(mb.targets, [n]);
  const lp = be.zeros([n]);
  const ent = be.zeros([n]);
  const lse = be.zeros([n]);
  be.linearLogprobForward(lp, ent, lse, acts.hidden, model.lmHead(), targets, temperature);
  return { lp, ent, lse, targets, acts };
}

export interface PolicyLossInputs {
  batch: PackedBatch;
  /** (B*T) log-probs when the batch was made (the PPO "old" policy); null: the current
   * policy is the old one (one update per batch), so the ratio is exactly 1 and no extra
   * forward pass is needed. */
  oldLogprob: Float32Array | null;
  refLogprob: Float32Array | null;
  /** (B) advantages, one per sequence. */
  advantages: Float32Array;
  useRolloutLogprob: boolean;
  /** Sequences and completion tokens of the whole batch when this one is a data-parallel
   * rank's share of it (default: this batch). The loss is normalised by the whole batch, so
   * the ranks' gradients sum to the single-process gradient. */
  wholeBatch?: { sequences: number; tokens: number };
}

/** How the LM head's loss gradient is made: one pass (linearGrpoLoss, or for SFT
 * linearLogprobForwardBackward: 3 matmuls per token block) or two (linearLogprobForward,
 * [grpoLoss,] linearLogprobBackward: 4; the reference the tests hold the one-pass ops to).
 * Same results. */
export interface GradientPath {
  twoPass?: boolean;
}

/**
 * One pass of policy-gradient backward over the batch in micro-batches, accumulating
 * gradients into model.grads. Returns the batch-level statistics (token-weighted).
 */
export async function policyGradient(model: Model, inp: PolicyLossInputs, loss: Omit<GrpoLossOptions, "B" | "T">, temperature: number, microBatch: number, path: GradientPath = {}): Promise<GrpoStats> {
  const be = model.backend;
  const { batch } = inp;
  const totals = Object.fromEntries(GRPO_STATS.map((k) => [k, 0])) as GrpoStats;
  totals.ratioMin = Infinity;
  totals.ratioMax = -Infinity;
  const totalTokens = inp.wholeBatch?.tokens ?? batch.tokens;
  const totalSeqs = inp.wholeBatch?.sequences ?? batch.B;
  for (const part of microBatches(batch, microBatch)) {
    const mb = part.batch;
    const count = mb.B;
    const n = mb.B * mb.T;
    const acts = model.forward(mb.ids, mb.B, mb.T);
    const targets = be.upload(mb.targets, [n]);
    const old = inp.oldLogprob ? be.upload(gatherTokens(inp.oldLogprob, batch.T, part), [n]) : null;
    const ref = inp.refLogprob ? be.upload(gatherTokens(inp.refLogprob, batch.T, part), [n]) : null;
    const roll = inp.useRolloutLogprob ? be.upload(mb.rolloutLogprobs, [n]) : null;
    const adv = be.upload(Float32Array.from(part.rows, (r) => inp.advantages[r]!), [count]);
    const mask = be.upload(mb.mask, [n]);
    const stats = be.zeros([GRPO_STATS.length]);
    const dhidden = be.zeros(acts.hidden.shape);
    // Each micro-batch normalises by its own size; rescale so the sum equals the batch loss:
    // token-mean by the batch's tokens, the per-sequence aggregations by its sequences.
    const w = loss.aggregation === "token-mean" ? mb.tokens / totalTokens : count / totalSeqs;
    const opts: LinearGrpoLossOptions = { ...loss, B: count, T: mb.T, lossScale: w };
    const lmHead = { model, hidden: acts.hidden, targets, temperature };
    lmHeadLoss(lmHead, path, dhidden, stats, old, ref, roll, adv, mask, opts).dispose();
    model.backward(acts, dhidden);
    const st = (await be.read(stats)) as Float32Array;
    accumulateStats(totals, st, w, mb.tokens / totalTokens);
    for (const t of [targets, adv, mask, stats, dhidden]) t.dispose();
    for (const t of [old, ref, roll]) t?.dispose();
    acts.dispose();
  }
  return totals;
}

interface LmHead {
  model: Model;
  hidden: Tensor;
  targets: Tensor;
  temperature: number;
}

/** The LM head's loss and gradient into dhidden and the head's gradient; returns the log-probs (valid where mask != 0). */
function lmHeadLoss(h: LmHead, path: GradientPath, dhidden: Tensor, stats: Tensor, old: Tensor | null, ref: Tensor | null, roll: Tensor | null, adv: Tensor, mask: Tensor, o: LinearGrpoLossOptions): Tensor {
  const be = h.model.backend;
  const n = h.targets.size;
  const lp = be.zeros([n]);
  const ent = be.zeros([n]);
  const args = [dhidden, h.model.lmHeadGrad(), stats, lp, ent, h.hidden, h.model.lmHead(), h.targets, old, ref, roll, adv, mask, h.temperature, o] as const;
  if (path.twoPass) linearGrpoLossComposed(be, ...args);
  else be.linearGrpoLoss(...args);
  ent.dispose();
  return lp;
}

function accumulateStats(totals: GrpoStats, st: Float32Array, lossWeight: number, tokenWeight: number): void {
  GRPO_STATS.forEach((k, i) => {
    const v = st[i];
    if (k === "ratioMin") totals.ratioMin = Math.min(totals.ratioMin, v);
    else if (k === "ratioMax") totals.ratioMax = Math.max(totals.ratioMax, v);
    else if (k === "tokens") totals.tokens += v;
    else if (k === "loss" || k === "pgLoss") totals[k] += v * lossWeight;
    else totals[k] += v * tokenWeight;
  });
}

/**
 * Supervised step on ground-truth completions: loss = -mean log p(target) over completion
 * tokens. Its gradient in each log-prob is known before the forward (-mask / tokens), so the
 * LM head runs forward and backward in one pass (linearLogprobForwardBackward; `path.twoPass`:
 * the forward then the backward). Returns the mean loss.
 */
export async function supervisedGradient(model: Model, batch: PackedBatch, microBatch: number, path: GradientPath = {}): Promise<number> {
  const be = model.backend;
  let lossSum = 0;
  const scale = 1 / Math.max(1, batch.tokens);
  for (const { batch: mb } of microBatches(batch, microBatch)) {
    const n = mb.B * mb.T;
    const acts = model.forward(mb.ids, mb.B, mb.T);
    const targets = be.upload(mb.targets, [n]);
    const dlp = be.upload(Float32Array.from(mb.mask, (m) => -m * scale), [n]);
    const [lp, ent, dent, dhidden] = [be.zeros([n]), be.zeros([n]), be.zeros([n]), be.zeros(acts.hidden.shape)];
    const args = [lp, ent, dhidden, model.lmHeadGrad(), acts.hidden, model.lmHead(), targets, dlp, dent, 1] as const;
    if (path.twoPass) linearLogprobComposed(be, ...args);
    else be.linearLogprobForwardBackward(...args);
    model.backward(acts, dhidden);
    const lpHost = (await be.read(lp)) as Float32Array;
    for (let i = 0; i < n; i++) if (mb.mask[i] !== 0) lossSum -= lpHost[i] * mb.mask[i];
    for (const t of [lp, ent, dent, dlp, targets, dhidden]) t.dispose();
    acts.dispose();
  }
  return lossSum * scale;
}

/**
 * Backward of a loss on per-sequence log-probs (preference optimization), over one packed
 * micro-batch, through the fused linear sequence loss (Backend.linearSequenceLoss): each row's
 * completion log-probs are summed, `lossGrad(rows, sums)` turns a group's sums into d loss / d sum
 * (groupOf[b]: row b's group, e.g. a pair's chosen and rejected rows; it is called once per block
 * of whole groups), and that becomes every completion token's dLogprob. Gradients accumulate into
 * model.grads. Returns the per-row sums (B).
 */
export async function sequenceLossGradient(model: Model, mb: PackedBatch, groupOf: Int32Array, lossGrad: SegmentLossGrad, path: GradientPath = {}): Promise<Float64Array> {
  const be = model.backend;
  const n = mb.B * mb.T;
  const segment = Int32Array.from(mb.mask, (m, i) => (m ? Math.floor(i / mb.T) : -1));
  const acts = model.forward(mb.ids, mb.B, mb.T);
  const targets = be.upload(mb.targets, [n]);
  const [lp, ent, dhidden] = [be.zeros([n]), be.zeros([n]), be.zeros(acts.hidden.shape)];
  try {
    const args = [lp, ent, dhidden, model.lmHeadGrad(), acts.hidden, model.lmHead(), targets, segment, groupOf, lossGrad, 1] as const;
    const sums = await (path.twoPass ? linearSequenceComposed(be, ...args) : be.linearSequenceLoss(...args));
    model.backward(acts, dhidden);
    return sums;
  } finally {
    for (const t of [lp, ent, targets, dhidden]) t.dispose();
    acts.dispose();
  }
}

/** Per-row summed completion log-probs of a packed batch, without gradients. */
export async function scoreSequences(model: Model, batch: PackedBatch, microBatch: number, opts: { disableAdapter?: boolean } = {}): Promise<Float64Array> {
  return rowSums((await scoreTokens(model, batch, 1, microBatch, opts)).logprob, batch);
}

export type { Tensor, Backend };
