// The Backend interface: tensors plus ops. The decoder (src/model) and the trainer (src/rl)
// are written once against it; cpu, cuda and webgpu implement it with the same op names and
// shapes (native/cpu/<op>.cpp, native/cuda/<op>.cu, kernels/<op>.wgsl).
//
// Letters used in shape comments:
//   B = batch, T = time (sequence length), S = KV-cache capacity, N = rows (usually B*T),
//   C = channels, H = hidden size, V = vocabulary, nh = query heads, nkv = key/value heads,
//   hd = head dim, M/K = matmul dims.
//
// Conventions
// - Ops are synchronous to call (on GPU backends they enqueue work); only read() is async.
// - "+=" in a shape comment means the op accumulates into that output (parameter gradients);
//   every other output is overwritten. Activation gradients are overwritten unless noted.
// - Outputs never alias inputs unless the op says so.
// - f32 everywhere except token ids / positions (i32), and frozen weights, which may be stored
//   in bf16 (see DType): an op reads them widened to f32 and computes in f32.

/**
 * Element types. "bf16" is storage for frozen weights only (Model.storeFrozenAs, --frozen-dtype):
 * accepted as matmul's b, embeddingForward's table and the linearLogprob weight, never as an
 * output or an activation (TypeError). upload(..., "bf16") rounds f32 values to nearest-even
 * bf16; read() gives them back widened to f32 (exact). Every backend stores 2 bytes per element
 * (webgpu packs two per 32-bit word, so its write/copy of bf16 work on even offsets).
 */
export type DType = "f32" | "i32" | "bf16";
export type BackendName = "cpu" | "cuda" | "webgpu";
/** What `--backend` accepts: a backend, or auto (cuda, then a hardware webgpu adapter, then cpu). */
export const BACKEND_CHOICES = ["auto", "cpu", "cuda", "webgpu"] as const satisfies readonly ("auto" | BackendName)[];
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  readonly backend: Backend;
  /** Bytes of storage this tensor owns (a view: those of its base). */
  readonly bytes: number;
  /** Frees the memory now (GC would do it later). Using a disposed tensor throws. */
  dispose(): void;
  readonly disposed: boolean;
}

export interface MatmulOptions {
  /** a is stored (K, M) and used transposed. */
  transA?: boolean;
  /** b is stored (N, K) and used transposed: the layout of nn.Linear weights. */
  transB?: boolean;
  /** out += alpha * a @ b instead of out = alpha * a @ b. */
  accumulate?: boolean;
  alpha?: number;
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
}

/** Fused sampler options; one setting for the whole batch. */
export interface SampleOptions {
  /** <= 0 or greedy=true: argmax. */
  temperature: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 = off. */
  topP: number;
  /** Drop tokens whose probability is below minP * max probability; 0 = off. */
  minP: number;
  greedy?: boolean;
}

export const KL_ESTIMATORS = ["k1", "k2", "k3"] as const;
export type KlEstimator = (typeof KL_ESTIMATORS)[number];
export const LOSS_AGGREGATIONS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"] as const;
export type LossAggregation = (typeof LOSS_AGGREGATIONS)[number];

export interface GrpoLossOptions {
  /** Sequences and (padded) completion length: per-token inputs are (B, T) row-major. */
  B: number;
  T: number;
  epsLow: number;
  epsHigh: number;
  /** Dual-clip constant c (> 1) applied when A < 0; 0 = off. */
  dualClip: number;
  /** KL coefficient; 0 = no KL term (refLogprob may then be null). */
  beta: number;
  kl: KlEstimator;
  /** Entropy bonus coefficient alpha (loss -= alpha * H); 0 = off. */
  entropyCoef: number;
  /** Truncated importance-sampling cap C for min(exp(old - rollout), C); 0 = off. */
  tisCap: number;
  aggregation: LossAggregation;
  /** Denominator length for dr-grpo (defaults to T). */
  maxCompletionLength?: number;
}

export interface LinearGrpoLossOptions extends GrpoLossOptions {
  /** Multiplies the gradients, not the stats: a micro-batch's share of the batch loss (default 1). */
  lossScale?: number;
}

/** Index of each statistic in the grpoLoss stats tensor. */
export const GRPO_STATS = [
  "loss",
  "pgLoss",
  "klMean",
  "entropyMean",
  "clipLowFrac",
  "clipHighFrac",
  "dualClipFrac",
  "ratioMin",
  "ratioMax",
  "ratioMean",
  "tokens",
] as const;
export type GrpoStatName = (typeof GRPO_STATS)[number];

export interface Backend {
  readonly name: BackendName;

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype?: DType): Tensor;
  /** dtype defaults to the array's (f32 or i32); "bf16" rounds Float32Array data to bf16. */
  upload(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): Tensor;
  /** Host copy of the whole tensor (bf16 comes back widened to f32). */
  read(t: Tensor): Promise<Float32Array | Int32Array>;
  /** Overwrite the tensor (or a range starting at element offset) from host memory. */
  write(t: Tensor, data: Float32Array | Int32Array, offset?: number): void;
  /** dst[dstOffset + i] = src[srcOffset + i] for i < count (elements). */
  copy(dst: Tensor, src: Tensor, dstOffset?: number, srcOffset?: number, count?: number): void;
  fill(t: Tensor, value: number): void;
  /**
   * The same memory seen with another shape of equal element count (no copy), e.g. the
   * matmul output (N, nh*hd) as attention's (B, T, nh, hd). Writes through either are seen by
   * both. Valid while t is; disposing the view does not free t.
   */
  view(t: Tensor, shape: readonly number[]): Tensor;
  /** Waits until all enqueued work is done. */
  sync(): Promise<void>;

  // ---- elementwise --------------------------------------------------------------------
  // out (n) = a (n) + b (n); out may alias a or b.
  add(out: Tensor, a: Tensor, b: Tensor): void;
  // dst (n) += alpha * src (n)
  accumulate(dst: Tensor, src: Tensor, alpha?: number): void;
  // t (n) *= alpha, in place
  scale(t: Tensor, alpha: number): void;
  // out (1) += sum(t^2), for global grad-norm clipping
  sumSquares(out: Tensor, t: Tensor): void;

  // ---- decoder ops --------------------------------------------------------------------
  // ids (N) i32, table (V, C) f32 or bf16 -> out (N, C)
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void;
  // dtable (V, C) +=, dout (N, C), ids (N)
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): void;
  // out (M, N) (+)= alpha * op(a) @ op(b); op(a) (M, K), op(b) (K, N); b f32 or bf16
  matmul(out: Tensor, a: Tensor, b: Tensor, opts?: MatmulOptions): void;
  // out (N, C) += bias (C), in place
  biasAdd(out: Tensor, bias: Tensor): void;
  // dbias (C) += sum over rows of dout (N, C)
  biasBackward(dbias: Tensor, dout: Tensor): void;
  // inp (N, C), weight (C) -> out (N, C), rstd (N). Qwen3 q/k-norm uses it with N = rows*heads, C = hd.
  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void;
  // dout (N, C), inp, weight, rstd -> dinp (N, C) (overwritten), dweight (C) +=
  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void;
  // inp (N, nh, hd), pos (N) i32 -> out (N, nh, hd); rotate-half (NeoX / HF) layout; out may alias inp
  ropeForward(out: Tensor, inp: Tensor, pos: Tensor, theta: number): void;
  // dout (N, nh, hd), pos (N) -> dinp (N, nh, hd) (inverse rotation); dinp may alias dout
  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void;
  // causal GQA attention, scale 1/sqrt(hd):
  // q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd), lse (B, nh, T) (log-sum-exp, kept for backward)
  attentionForward(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor): void;
  // dout (B, T, nh, hd), q, k, v, out, lse -> dq (B, T, nh, hd), dk, dv (B, T, nkv, hd) (all overwritten)
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor): void;
  // Attention against a KV cache (prefill and decode). Query t of row b sits at position
  // pos[b] + t and sees cache positions 0 .. pos[b] + t.
  // q (B, Tq, nh, hd), kCache, vCache (B, S, nkv, hd), pos (B) i32 -> out (B, Tq, nh, hd)
  attentionDecode(out: Tensor, q: Tensor, kCache: Tensor, vCache: Tensor, pos: Tensor): void;
  // x (B, Tq, nkv, hd), pos (B) i32 -> cache (B, S, nkv, hd) rows pos[b] .. pos[b] + Tq - 1
  kvWrite(cache: Tensor, x: Tensor, pos: Tensor): void;
  // gate, up (N, C) -> out (N, C) = silu(gate) * up
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void;
  // dout, gate, up (N, C) -> dgate, dup (N, C)
  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void;
  // logits (N, V), targets (N) i32 (< 0: ignored, loss 0) -> loss (N) = -log softmax(logits)[target]
  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void;
  // dloss (N), logits (N, V), targets (N) -> dlogits (N, V) = (softmax - onehot) * dloss
  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void;
  // inp (N, C), idx (M) i32 -> out (M, C) = inp[idx]
  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void;
  // param, grad, m, v (n): one AdamW step with decoupled weight decay, in place
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, opts: AdamWOptions): void;

  // ---- fused kernels ------------------------------------------------------------------
  // logits (N, V), targets (N) i32 -> logprob (N), entropy (N) of softmax(logits / temperature),
  // one pass over each row (online log-sum-exp); targets < 0: logprob 0, entropy 0.
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void;
  // logits (B, V), seeds (B) -> ids (B) i32. Exact sampling from the truncated, tempered
  // distribution without sorting V; the same seed gives the same token.
  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, opts: SampleOptions): void;
  // hidden (N, H), weight (V, H) f32 or bf16, targets (N) i32 -> logprob (N), entropy (N), lse (N)
  // of softmax(hidden @ weight^T / temperature), never materialising (N, V).
  // targets < 0: logprob 0, entropy 0.
  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void;
  // dlogprob (N), dentropy (N) -> dhidden (N, H) (overwritten), dweight (V, H) +=
  // dweight null: no weight gradient (a frozen head; its products are skipped).
  linearLogprobBackward(dhidden: Tensor, dweight: Tensor | null, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void;
  // Both in one pass when the upstream gradient does not depend on the outputs (a loss linear in
  // log-probs and entropies, e.g. cross-entropy): hidden, weight, targets, dlogprob, dentropy (N)
  // -> logprob, entropy (N), dhidden (N, H) (overwritten), dweight (V, H) += (null: none).
  // Equals linearLogprobForward then linearLogprobBackward, with each row's logits made once
  // (3 matmuls, not 4); rows with dlogprob = dentropy = 0 get the forward only. Backends
  // without the one-pass kernel run that composition (src/backend/linear-logprob-composed.ts).
  linearLogprobForwardBackward(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, dlogprob: Tensor, dentropy: Tensor, temperature: number): void;
  // A loss of summed log-probs whose upstream gradient is known only once the sums are (DPO and
  // the other preference losses). segment (N, host): the sum row i's log-prob adds to (-1:
  // outside the loss: logprob and entropy 0, no gradient); groupOf (S, host): the group of each
  // segment (the segments one loss term couples: a pair's chosen and rejected). lossGrad(segs,
  // sums) returns d loss / d sum for the segments it is given; every segment with a row in the
  // loss is given exactly once, with its group's others; it must not call the backend. Then
  // dlogprob of a row = that of its segment, dentropy 0: -> logprob, entropy (N), dhidden (N, H)
  // (overwritten), dweight (V, H) += (null: none); resolves to the segments' sums (S; 0 for a
  // segment with no row in the loss). On the CPU the rows go a block of whole groups
  // at a time through the one-pass head (3 matmuls); a group larger than a block, and the other
  // backends, run forward, lossGrad, backward (src/backend/linear-sequence-composed.ts: 4).
  linearSequenceLoss(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, segment: Int32Array, groupOf: Int32Array, lossGrad: SegmentLossGrad, temperature: number): Promise<Float64Array>;
  // Per-token (B*T): logprob, oldLogprob, refLogprob|null, rolloutLogprob|null, entropy|null,
  // mask (f32 0/1); advantages (B)
  // -> dlogprob (N), dentropy (N) (overwritten), stats (GRPO_STATS.length)
  grpoLoss(
    dlogprob: Tensor,
    dentropy: Tensor,
    stats: Tensor,
    logprob: Tensor,
    oldLogprob: Tensor,
    refLogprob: Tensor | null,
    rolloutLogprob: Tensor | null,
    entropy: Tensor | null,
    advantages: Tensor,
    mask: Tensor,
    opts: GrpoLossOptions,
  ): void;
  // The LM head, log-prob, entropy and GRPO loss with both gradients in one pass (N = B*T):
  // hidden (N, H), weight (V, H), targets (N) i32, oldLogprob|null, refLogprob|null,
  // rolloutLogprob|null (N), advantages (B), mask (N)
  // -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (GRPO_STATS.length), logprob (N), entropy (N)
  // Equals linearLogprobForward, grpoLoss (with this entropy), scale(dlogprob and dentropy,
  // lossScale), linearLogprobBackward, but each token block's logits are made once (3 matmuls,
  // not 4) and (N, V) never exists. oldLogprob null: the current policy is the old one (ratio 1).
  // Rows outside the loss (mask 0): dhidden 0, logprob and entropy unspecified.
  // dweight null (a frozen head, no gradient) or a bf16 weight: one pass on the CPU; on CUDA and
  // WebGPU computed as that composition (src/backend/linear-grpo-composed.ts), whose kernels read bf16.
  linearGrpoLoss(
    dhidden: Tensor,
    dweight: Tensor | null,
    stats: Tensor,
    logprob: Tensor,
    entropy: Tensor,
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    oldLogprob: Tensor | null,
    refLogprob: Tensor | null,
    rolloutLogprob: Tensor | null,
    advantages: Tensor,
    mask: Tensor,
    temperature: number,
    opts: LinearGrpoLossOptions,
  ): void;

  /** Releases device resources. */
  destroy(): void;
}

/** d loss / d sum for each of the segments given (linearSequenceLoss), in their order. */
export type SegmentLossGrad = (segments: Int32Array, sums: Float64Array) => ArrayLike<number>;

/** Storage bytes per element on cpu and cuda. */
export function dtypeBytes(dtype: DType): number {
  return dtype === "bf16" ? 2 : 4;
}

/** dtype code passed to the kernels for a weight operand: 0 f32, 1 bf16. */
export function weightDtypeCode(dtype: DType): 0 | 1 {
  return dtype === "bf16" ? 1 : 0;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
