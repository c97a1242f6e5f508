// anvil-rl/kernels: the fused kernels as plain functions over host typed arrays, for users who
// want the sampler, the fused log-prob or the GRPO loss without the trainer.
//
//   import { sample, linearLogprob, grpoLoss } from "anvil-rl/kernels";
//
// Every function validates its arguments (TypeError for the wrong kind of value, RangeError for
// a wrong length) and runs on the CPU backend (C++ addon, OpenMP, BLAS). Inputs are never
// modified or retained; outputs are fresh arrays (except an explicit `dweight` accumulator).
import { randomFillSync } from "node:crypto";
import { GRPO_STATS, type DType, type GrpoLossOptions, type GrpoStatName, type SampleOptions, type SegmentLossGrad } from "./backend/backend.js";
import { checkGrpoOptions, checkSampleOptions } from "./backend/check.js";
import { CpuBackend, CpuTensor } from "./backend/cpu.js";
import { checkInt } from "./backend/check.js";

export { GRPO_STATS };
export type { GrpoLossOptions, GrpoStatName, KlEstimator, LossAggregation, SampleOptions } from "./backend/backend.js";

let backend: CpuBackend | null = null;
function cpu(): CpuBackend {
  return (backend ??= new CpuBackend());
}

function expectArray<T extends Float32Array | Int32Array | Uint32Array>(
  v: unknown,
  ctor: { new (n: number): T; name: string },
  name: string,
  length: number,
  what: string,
): T {
  if (!(v instanceof ctor)) throw new TypeError(`${name} must be a ${ctor.name}`);
  if (v.length !== length) throw new RangeError(`${name} has ${v.length} elements, expected ${length} = ${what}`);
  return v;
}

/** Wraps a host array as a CPU tensor without copying. */
function view(data: Float32Array | Int32Array, shape: number[]): CpuTensor {
  const dtype: DType = data instanceof Int32Array ? "i32" : "f32";
  return new CpuTensor(cpu(), shape, dtype, data);
}

function checkTemperature(t: number): number {
  if (typeof t !== "number" || !(t > 0) || !Number.isFinite(t)) throw new RangeError(`temperature must be a finite number > 0, got ${t}`);
  return t;
}

// ---- sampling -------------------------------------------------------------------------

/**
 * Draws one token per row from softmax(logits / temperature) truncated by top-k, top-p and
 * min-p, exactly (no approximation) and without sorting the vocabulary.
 *
 * - `temperature <= 0` or `greedy`: argmax (first maximum).
 * - `topK` 0 or >= V: off. Otherwise keeps tokens whose probability is >= the k-th largest
 *   (ties at the boundary are all kept).
 * - `topP` 1: off. Otherwise keeps, among the top-k survivors, the most likely tokens until their
 *   renormalised mass reaches topP (ties at the boundary are all kept).
 * - `minP` 0: off. Otherwise keeps tokens with p >= minP * max p.
 *
 * The same seed gives the same token (splitmix64 of the seed drives an inverse-CDF draw over the
 * kept tokens in index order). Omitted seeds are random. A row containing NaN or +inf, or made
 * only of -inf, throws an Error naming the row.
 *
 * @param logits (B, V) row-major
 * @returns ids (B)
 */
export function sample(logits: Float32Array, dims: { B: number; V: number }, opts: SampleOptions, seeds?: Uint32Array): Int32Array {
  const B = checkInt(dims.B, "B", 0);
  const V = checkInt(dims.V, "V", 1);
  expectArray(logits, Float32Array, "logits", B * V, "B*V");
  checkSampleOptions(opts);
  if (seeds === undefined) seeds = randomFillSync(new Uint32Array(B));
  expectArray(seeds, Uint32Array, "seeds", B, "B");
  const ids = new Int32Array(B);
  cpu().sample(view(ids, [B]), view(logits, [B, V]), seeds, opts);
  return ids;
}

// ---- log-prob and entropy ---------------------------------------------------------------

export interface LogprobResult {
  /** log softmax(z)[target] per row (0 where target < 0). */
  logprob: Float32Array;
  /** Entropy of softmax(z) per row, in nats (0 where target < 0). */
  entropy: Float32Array;
}

/**
 * Per-row log-prob of the target and entropy from materialised logits, z = logits / temperature,
 * in one pass per row (online log-sum-exp). targets < 0 mark ignored rows.
 * @param logits (N, V)  @param targets (N)
 */
export function logprobFromLogits(logits: Float32Array, targets: Int32Array, dims: { N: number; V: number; temperature?: number }): LogprobResult {
  const N = checkInt(dims.N, "N", 0);
  const V = checkInt(dims.V, "V", 1);
  const T = checkTemperature(dims.temperature ?? 1);
  expectArray(logits, Float32Array, "logits", N * V, "N*V");
  expectArray(targets, Int32Array, "targets", N, "N");
  const logprob = new Float32Array(N), entropy = new Float32Array(N);
  cpu().logprobFromLogits(view(logprob, [N]), view(entropy, [N]), view(logits, [N, V]), view(targets, [N]), T);
  return { logprob, entropy };
}

export interface LinearDims {
  /** Tokens. */
  N: number;
  /** Hidden size. */
  H: number;
  /** Vocabulary size. */
  V: number;
  /** Softmax temperature (default 1). */
  temperature?: number;
}

export interface LinearLogprobResult extends LogprobResult {
  /** log-sum-exp of z per row, needed by the backward. */
  lse: Float32Array;
}

function checkLinear(hidden: Float32Array, weight: Float32Array, targets: Int32Array, dims: LinearDims): [number, number, number, number] {
  const N = checkInt(dims.N, "N", 0);
  const H = checkInt(dims.H, "H", 1);
  const V = checkInt(dims.V, "V", 1);
  const T = checkTemperature(dims.temperature ?? 1);
  expectArray(hidden, Float32Array, "hidden", N * H, "N*H");
  expectArray(weight, Float32Array, "weight", V * H, "V*H");
  expectArray(targets, Int32Array, "targets", N, "N");
  for (let i = 0; i < N; i++) {
    if (targets[i] >= V) throw new RangeError(`targets[${i}] = ${targets[i]} is out of range [0, V = ${V})`);
  }
  return [N, H, V, T];
}

/**
 * Fused LM head + log-prob + entropy: z = hidden @ weight^T / temperature, then per token
 * logprob = z[target] - logsumexp(z) and the entropy of softmax(z). The (N, V) logits are never
 * stored: the kernel works on (256 tokens x 2048 vocab) tiles with an online log-sum-exp.
 * @param hidden (N, H)  @param weight (V, H) (nn.Linear layout)  @param targets (N), < 0 = ignored
 */
export function linearLogprob(hidden: Float32Array, weight: Float32Array, targets: Int32Array, dims: LinearDims): LinearLogprobResult {
  const [N, H, V, T] = checkLinear(hidden, weight, targets, dims);
  const logprob = new Float32Array(N), entropy = new Float32Array(N), lse = new Float32Array(N);
  cpu().linearLogprobForward(view(logprob, [N]), view(entropy, [N]), view(lse, [N]), view(hidden, [N, H]), view(weight, [V, H]), view(targets, [N]), T);
  return { logprob, entropy, lse };
}

export interface LinearLogprobGrads {
  /** dL/dhidden (N, H). */
  dhidden: Float32Array;
  /** dL/dweight (V, H): the `dweight` argument accumulated into, or a fresh array. */
  dweight: Float32Array;
}

/**
 * Backward of {@link linearLogprob}: given dL/dlogprob and dL/dentropy per token, returns
 * dL/dhidden and dL/dweight, recomputing logits tile by tile (no (N, V) storage). Pass
 * `forward` = the forward's result (its lse and entropy are reused). `dweight`, if given, is
 * accumulated into (+=), as parameter gradients are.
 */
export function linearLogprobBackward(
  dlogprob: Float32Array,
  dentropy: Float32Array,
  hidden: Float32Array,
  weight: Float32Array,
  targets: Int32Array,
  forward: { lse: Float32Array; entropy: Float32Array },
  dims: LinearDims,
  dweight?: Float32Array,
): LinearLogprobGrads {
  const [N, H, V, T] = checkLinear(hidden, weight, targets, dims);
  expectArray(dlogprob, Float32Array, "dlogprob", N, "N");
  expectArray(dentropy, Float32Array, "dentropy", N, "N");
  expectArray(forward.lse, Float32Array, "forward.lse", N, "N");
  expectArray(forward.entropy, Float32Array, "forward.entropy", N, "N");
  const dw = dweight === undefined ? new Float32Array(V * H) : expectArray(dweight, Float32Array, "dweight", V * H, "V*H");
  const dhidden = new Float32Array(N * H);
  cpu().linearLogprobBackward(
    view(dhidden, [N, H]), view(dw, [V, H]), view(dlogprob, [N]), view(dentropy, [N]), view(hidden, [N, H]), view(weight, [V, H]),
    view(targets, [N]), view(forward.lse, [N]), view(forward.entropy, [N]), T,
  );
  return { dhidden, dweight: dw };
}

/**
 * {@link linearLogprob} and {@link linearLogprobBackward} in one pass, for a loss whose
 * dL/dlogprob and dL/dentropy are known before the forward (a loss linear in them, such as
 * cross-entropy with dlogprob = -1/tokens): each token block's logits are made once (3 matrix
 * products instead of 4), with the forward's memory bound. Rows with dlogprob = dentropy = 0
 * get the forward only. `dweight`, if given, is accumulated into (+=).
 */
export function linearLogprobWithGrad(
  dlogprob: Float32Array,
  dentropy: Float32Array,
  hidden: Float32Array,
  weight: Float32Array,
  targets: Int32Array,
  dims: LinearDims,
  dweight?: Float32Array,
): LinearLogprobGrads & { logprob: Float32Array; entropy: Float32Array } {
  const [N, H, V, T] = checkLinear(hidden, weight, targets, dims);
  expectArray(dlogprob, Float32Array, "dlogprob", N, "N");
  expectArray(dentropy, Float32Array, "dentropy", N, "N");
  const dw = dweight === undefined ? new Float32Array(V * H) : expectArray(dweight, Float32Array, "dweight", V * H, "V*H");
  const logprob = new Float32Array(N), entropy = new Float32Array(N), dhidden = new Float32Array(N * H);
  cpu().linearLogprobForwardBackward(
    view(logprob, [N]), view(entropy, [N]), view(dhidden, [N, H]), view(dw, [V, H]), view(hidden, [N, H]), view(weight, [V, H]),
    view(targets, [N]), view(dlogprob, [N]), view(dentropy, [N]), T,
  );
  return { logprob, entropy, dhidden, dweight: dw };
}

/**
 * A loss of summed log-probs (DPO and the other preference losses) with its LM-head gradients:
 * row i's log-prob adds to segment[i] (-1: outside the loss), segment s is in group groupOf[s]
 * (the segments one loss term couples: a pair's chosen and rejected). `lossGrad(segments, sums)`
 * is called once per block of whole groups, each segment once, and returns d loss / d sum for
 * the segments it is given; every row then gets dlogprob = that of its segment. One pass per
 * block (3 matrix products), with the forward's memory bound. `dweight`, if given, is
 * accumulated into (+=). Returns the log-probs, entropies and the sums (per segment).
 */
export async function linearSequenceLoss(
  hidden: Float32Array,
  weight: Float32Array,
  targets: Int32Array,
  segment: Int32Array,
  groupOf: Int32Array,
  lossGrad: SegmentLossGrad,
  dims: LinearDims,
  dweight?: Float32Array,
): Promise<LinearLogprobGrads & { logprob: Float32Array; entropy: Float32Array; sums: Float64Array }> {
  const [N, H, V, T] = checkLinear(hidden, weight, targets, dims);
  const dw = dweight === undefined ? new Float32Array(V * H) : expectArray(dweight, Float32Array, "dweight", V * H, "V*H");
  const logprob = new Float32Array(N), entropy = new Float32Array(N), dhidden = new Float32Array(N * H);
  const sums = await cpu().linearSequenceLoss(view(logprob, [N]), view(entropy, [N]), view(dhidden, [N, H]), view(dw, [V, H]), view(hidden, [N, H]), view(weight, [V, H]), view(targets, [N]), segment, groupOf, lossGrad, T);
  return { logprob, entropy, dhidden, dweight: dw, sums };
}

// ---- GRPO loss -----------------------------------------------------------------------------

export interface GrpoLossInputs {
  /** Current policy log-prob per token (B*T). */
  logprob: Float32Array;
  /** Log-prob when the batch was made (B*T). */
  oldLogprob: Float32Array;
  /** Reference model log-prob (B*T); required when beta != 0. */
  refLogprob?: Float32Array | null;
  /** Inference engine log-prob (B*T); required when tisCap != 0. */
  rolloutLogprob?: Float32Array | null;
  /** Policy entropy per token (B*T); required when entropyCoef != 0. */
  entropy?: Float32Array | null;
  /** Advantage per sequence (B). */
  advantages: Float32Array;
  /** 1 for completion tokens that count, 0 for padding (B*T). */
  mask: Float32Array;
}

export interface GrpoLossResult {
  loss: number;
  /** dL/dlogprob per token (B*T). */
  dlogprob: Float32Array;
  /** dL/dentropy per token (B*T). */
  dentropy: Float32Array;
  stats: Record<GrpoStatName, number>;
}

/**
 * GRPO-family loss with its gradient in one pass: PPO clipped surrogate (asymmetric eps),
 * optional dual clip for A < 0, truncated importance weight, KL (k1/k2/k3) to a reference,
 * entropy bonus, and the token-mean / seq-mean-token-mean / seq-mean-token-sum / dr-grpo
 * aggregations. Exact semantics: native/include/anvil/grpo_loss.h.
 */
export function grpoLoss(inputs: GrpoLossInputs, opts: GrpoLossOptions): GrpoLossResult {
  checkGrpoOptions(opts);
  const { B, T } = opts;
  const N = B * T;
  const f = (v: Float32Array, name: string, n = N, what = "B*T") => view(expectArray(v, Float32Array, name, n, what), [n]);
  const opt = (v: Float32Array | null | undefined, name: string) => (v == null ? null : f(v, name));
  const dlogprob = new Float32Array(N), dentropy = new Float32Array(N), stats = new Float32Array(GRPO_STATS.length);
  cpu().grpoLoss(
    view(dlogprob, [N]), view(dentropy, [N]), view(stats, [stats.length]), f(inputs.logprob, "logprob"), f(inputs.oldLogprob, "oldLogprob"),
    opt(inputs.refLogprob, "refLogprob"), opt(inputs.rolloutLogprob, "rolloutLogprob"), opt(inputs.entropy, "entropy"),
    f(inputs.advantages, "advantages", B, "B"), f(inputs.mask, "mask"), opts,
  );
  const named = Object.fromEntries(GRPO_STATS.map((k, i) => [k, stats[i]])) as Record<GrpoStatName, number>;
  return { loss: named.loss, dlogprob, dentropy, stats: named };
}

// ---- fused linear GRPO loss ------------------------------------------------------------------

export interface LinearGrpoLossInputs {
  /** Final hidden states (B*T, H). */
  hidden: Float32Array;
  /** LM head (V, H), nn.Linear layout. */
  weight: Float32Array;
  /** Next-token ids (B*T), < 0 = no target. */
  targets: Int32Array;
  /** Log-prob when the batch was made (B*T); null or absent: the current policy is the old one (ratio 1). */
  oldLogprob?: Float32Array | null;
  /** Reference model log-prob (B*T); required when beta != 0. */
  refLogprob?: Float32Array | null;
  /** Inference engine log-prob (B*T); required when tisCap != 0. */
  rolloutLogprob?: Float32Array | null;
  /** Advantage per sequence (B). */
  advantages: Float32Array;
  /** 1 for completion tokens that count, 0 for padding (B*T). */
  mask: Float32Array;
}

export interface LinearGrpoLossResult extends LinearLogprobGrads {
  loss: number;
  stats: Record<GrpoStatName, number>;
  /** Per token (B*T), where mask != 0 (elsewhere 0). */
  logprob: Float32Array;
  entropy: Float32Array;
}

/**
 * The LM head, log-prob, entropy and {@link grpoLoss} with dL/dhidden and dL/dweight in one
 * pass (Liger's FusedLinearGRPOLoss): each block of 256 token rows gets its logits once, its
 * GRPO gradient, and both weight products, so the (B*T, V) logits never exist and are never
 * recomputed. Equals linearLogprob + grpoLoss (with its entropy) + linearLogprobBackward, with
 * the gradients scaled by `opts.lossScale` (default 1). `dweight`, if given, is accumulated into.
 */
export function linearGrpoLoss(inputs: LinearGrpoLossInputs, opts: GrpoLossOptions & { H: number; V: number; temperature?: number; lossScale?: number }, dweight?: Float32Array): LinearGrpoLossResult {
  checkGrpoOptions(opts);
  const { B, T } = opts;
  const N = B * T;
  const [, H, V, temp] = checkLinear(inputs.hidden, inputs.weight, inputs.targets, { N, H: opts.H, V: opts.V, temperature: opts.temperature });
  const f = (v: Float32Array, name: string, n = N, what = "B*T") => view(expectArray(v, Float32Array, name, n, what), [n]);
  const opt = (v: Float32Array | null | undefined, name: string) => (v == null ? null : f(v, name));
  const dw = dweight === undefined ? new Float32Array(V * H) : expectArray(dweight, Float32Array, "dweight", V * H, "V*H");
  const dhidden = new Float32Array(N * H), logprob = new Float32Array(N), entropy = new Float32Array(N), stats = new Float32Array(GRPO_STATS.length);
  cpu().linearGrpoLoss(
    view(dhidden, [N, H]), view(dw, [V, H]), view(stats, [stats.length]), view(logprob, [N]), view(entropy, [N]),
    view(inputs.hidden, [N, H]), view(inputs.weight, [V, H]), view(inputs.targets, [N]),
    opt(inputs.oldLogprob, "oldLogprob"), opt(inputs.refLogprob, "refLogprob"), opt(inputs.rolloutLogprob, "rolloutLogprob"),
    f(inputs.advantages, "advantages", B, "B"), f(inputs.mask, "mask"), temp, opts,
  );
  const named = Object.fromEntries(GRPO_STATS.map((k, i) => [k, stats[i]])) as Record<GrpoStatName, number>;
  return { loss: named.loss, stats: named, dhidden, dweight: dw, logprob, entropy };
}
