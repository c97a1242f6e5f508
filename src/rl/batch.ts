// Packing rollouts into the padded (B, T) token layout the loss works on.
//
// Row b holds prompt + completion, right-padded. Position t predicts token t+1, so the
// target at t is ids[t+1] when t+1 falls inside the completion, else -1 (no loss there).
// Per-token tensors (logprob, mask, ...) use the same (B, T) layout.

export interface Sequence {
  promptIds: number[];
  completionIds: number[];
  /** Per-completion-token log-probs under the sampler (for truncated importance sampling). */
  rolloutLogprobs?: number[];
}

export interface PackedBatch {
  B: number;
  T: number;
  ids: Int32Array; // (B, T)
  targets: Int32Array; // (B, T), -1 outside completions
  mask: Float32Array; // (B, T), 1 where targets >= 0
  rolloutLogprobs: Float32Array; // (B, T), 0 outside completions
  /** Completion tokens in the batch. */
  tokens: number;
}

export function packBatch(seqs: Sequence[], padId: number): PackedBatch {
  const B = seqs.length;
  const T = Math.max(2, ...seqs.map((s) => s.promptIds.length + s.completionIds.length));
  const ids = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-1);
  const mask = new Float32Array(B * T);
  const rollout = new Float32Array(B * T);
  let tokens = 0;
  seqs.forEach((s, b) => {
    const P = s.promptIds.length;
    const row = b * T;
    ids.set(s.promptIds, row);
    ids.set(s.completionIds, row + P);
    for (let j = 0; j < s.completionIds.length; j++) {
      const t = P + j - 1; // position predicting completion token j
      targets[row + t] = s.completionIds[j];
      mask[row + t] = 1;
      if (s.rolloutLogprobs) rollout[row + t] = s.rolloutLogprobs[j] ?? 0;
      tokens++;
    }
  });
  return { B, T, ids, targets, mask, rolloutLogprobs: rollout, tokens };
}

/**
 * A batch from explicit next-token targets (B, T) (< 0: no loss there), e.g. a language-modelling
 * batch where every position is scored. No rollout log-probs.
 */
export function batchFromTargets(ids: Int32Array, targets: Int32Array, B: number, T: number): PackedBatch {
  if (ids.length !== B * T || targets.length !== B * T) throw new RangeError(`batchFromTargets: ids and targets must have B*T = ${B * T} elements, got ${ids.length} and ${targets.length}`);
  const mask = new Float32Array(B * T);
  let tokens = 0;
  for (let i = 0; i < mask.length; i++) if (targets[i] >= 0) (mask[i] = 1), tokens++;
  return { B, T, ids, targets, mask, rolloutLogprobs: new Float32Array(B * T), tokens };
}

/** Rows [start, start+count) of a packed batch (views, no copies). */
export function sliceBatch(p: PackedBatch, start: number, count: number): PackedBatch {
  const a = start * p.T;
  const b = (start + count) * p.T;
  const mask = p.mask.subarray(a, b);
  let tokens = 0;
  for (let i = 0; i < mask.length; i++) tokens += mask[i];
  return {
    B: count,
    T: p.T,
    ids: p.ids.subarray(a, b),
    targets: p.targets.subarray(a, b),
    mask,
    rolloutLogprobs: p.rolloutLogprobs.subarray(a, b),
    tokens,
  };
}

/** Per-row sums of a (B, T) per-token array over the completion tokens (the mask): (B). */
export function rowSums(values: ArrayLike<number>, p: PackedBatch): Float64Array {
  const out = new Float64Array(p.B);
  for (let b = 0; b < p.B; b++) {
    let s = 0;
    for (let i = b * p.T; i < (b + 1) * p.T; i++) if (p.mask[i]) s += values[i];
    out[b] = s;
  }
  return out;
}
