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

/** A micro-batch of a packed batch: which of its rows (in order), as their own packed batch. */
export interface MicroBatch {
  rows: number[];
  batch: PackedBatch;
}

/** Padding a micro-batch may carry before it is closed (fraction of its cells). */
const MAX_PADDING = 0.2;

/**
 * The batch's rows grouped for compute: sorted by length (longest first), a micro-batch closes at
 * `maxRows` rows or when one more row would make more than 20% of its cells padding, and each is
 * cut to its own longest row. A row's length ends at its last scored position: with right padding
 * and causal attention nothing after it changes a score or a gradient, so sums over the
 * micro-batches equal those over the padded batch, while the compute follows the real tokens
 * (a batch of mixed-depth traces is about half padding). Rows with no completion are left out.
 */
export function microBatches(p: PackedBatch, maxRows: number): MicroBatch[] {
  const len = new Int32Array(p.B);
  for (let b = 0; b < p.B; b++) for (let t = p.T - 1; t >= 0; t--) if (p.mask[b * p.T + t] !== 0) (len[b] = t + 1), (t = -1);
  const order = [...Array(p.B).keys()].filter((b) => len[b] > 0).sort((a, b) => len[b] - len[a] || a - b);
  const out: MicroBatch[] = [];
  for (let i = 0; i < order.length; ) {
    const rows = [order[i]!];
    const T = len[order[i]!];
    let cells = T;
    for (i++; i < order.length && rows.length < maxRows; i++) {
      const next = cells + len[order[i]!];
      if (next < (1 - MAX_PADDING) * (rows.length + 1) * T) break;
      rows.push(order[i]!);
      cells = next;
    }
    out.push({ rows, batch: gatherRows(p, rows, Math.max(2, T)) });
  }
  return out;
}

/** Rows `rows` of a packed batch, each cut to its first T positions. */
function gatherRows(p: PackedBatch, rows: number[], T: number): PackedBatch {
  const B = rows.length;
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const mask = new Float32Array(B * T);
  const rollout = new Float32Array(B * T);
  let tokens = 0;
  rows.forEach((r, i) => {
    const a = r * p.T;
    ids.set(p.ids.subarray(a, a + T), i * T);
    targets.set(p.targets.subarray(a, a + T), i * T);
    mask.set(p.mask.subarray(a, a + T), i * T);
    rollout.set(p.rolloutLogprobs.subarray(a, a + T), i * T);
    for (let t = 0; t < T; t++) tokens += p.mask[a + t];
  });
  return { B, T, ids, targets, mask, rolloutLogprobs: rollout, tokens };
}

/** A per-token (B, T) array of the whole batch, in a micro-batch's layout. */
export function gatherTokens(values: Float32Array, wholeT: number, mb: MicroBatch): Float32Array {
  const T = mb.batch.T;
  const out = new Float32Array(mb.rows.length * T);
  mb.rows.forEach((r, i) => out.set(values.subarray(r * wholeT, r * wholeT + T), i * T));
  return out;
}

/** The inverse of gatherTokens: a micro-batch's per-token values into the whole batch's (B, T). */
export function scatterTokens(dst: Float32Array, wholeT: number, mb: MicroBatch, values: Float32Array): void {
  const T = mb.batch.T;
  mb.rows.forEach((r, i) => dst.set(values.subarray(i * T, (i + 1) * T), r * wholeT));
}
