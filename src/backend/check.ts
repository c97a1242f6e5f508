// Argument validation shared by all backends, so every backend rejects a bad call with the
// same message: TypeError for the wrong kind of thing, RangeError for a wrong size.
import { GRPO_STATS, type Backend, type DType, type GrpoLossOptions, type LinearGrpoLossOptions, type MatmulOptions, type SampleOptions, type Tensor } from "./backend.js";

export function checkTensor(t: Tensor | null | undefined, name: string, backend: Backend, dtype: DType = "f32"): Tensor {
  if (!t || typeof t !== "object" || !("shape" in t)) throw new TypeError(`${name} must be a Tensor`);
  if (t.disposed) throw new TypeError(`${name} was disposed`);
  if (t.backend !== backend) throw new TypeError(`${name} lives on backend ${t.backend.name}, expected ${backend.name}`);
  if (t.dtype !== dtype) throw new TypeError(`${name} must be ${dtype}, got ${t.dtype}`);
  return t;
}

/**
 * The dtype an upload makes: the array's (f32 or i32) unless `dtype` says otherwise; bf16 only
 * from a Float32Array (rounded to nearest even). TypeError for anything else.
 */
export function uploadDtype(data: Float32Array | Int32Array, dtype?: DType): DType {
  if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) throw new TypeError("upload: data must be a Float32Array or Int32Array");
  const own: DType = data instanceof Int32Array ? "i32" : "f32";
  if (dtype === undefined || dtype === own || (dtype === "bf16" && own === "f32")) return dtype ?? own;
  throw new TypeError(`upload: a ${data.constructor.name} cannot make a ${dtype} tensor${dtype === "bf16" ? " (bf16 tensors are made from a Float32Array)" : ""}`);
}

/** A weight operand (matmul's b, an embedding table, the LM head): f32, or bf16 storage. */
export function checkWeight(t: Tensor | null | undefined, name: string, backend: Backend): Tensor {
  return checkTensor(t, name, backend, t && typeof t === "object" && t.dtype === "bf16" ? "bf16" : "f32");
}

/** Checks the element count (shapes are free to be viewed differently, e.g. (N, nh, hd) as (N*nh, hd)). */
export function checkSize(t: Tensor, name: string, size: number, what: string): void {
  if (t.size !== size) throw new RangeError(`${name} has ${t.size} elements (shape [${t.shape.join(", ")}]), expected ${size} = ${what}`);
}

export function checkInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${v}`);
  if (v < min) throw new RangeError(`${name} must be >= ${min}, got ${v}`);
  return v;
}

export function checkFinite(v: number, name: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`${name} must be a finite number, got ${v}`);
  return v;
}

/** Last dimension of a tensor, and the product of the others. */
export function rowsCols(t: Tensor): [number, number] {
  const c = t.shape[t.shape.length - 1] ?? 1;
  // Product of the leading dims (not size / c): a (3, 0) tensor has 3 rows of 0 columns.
  let r = 1;
  for (let i = 0; i < t.shape.length - 1; i++) r *= t.shape[i];
  return [r, c];
}

/** matmul: out (M, N) (+)= alpha * op(a) (M, K) @ op(b) (K, N); the checked dimensions. */
export function matmulDims(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions) {
  const { transA = false, transB = false, accumulate = false, alpha = 1 } = opts;
  const [M, N] = rowsCols(out);
  if (a.shape.length < 2 || b.shape.length < 2) throw new RangeError("matmul: a and b must be at least 2-D");
  const [ar, ac] = rowsCols(a);
  const [br, bc] = rowsCols(b);
  const aM = transA ? ac : ar, K = transA ? ar : ac;
  const bK = transB ? bc : br, bN = transB ? br : bc;
  if (aM !== M || bN !== N || bK !== K)
    throw new RangeError(`matmul: shapes do not agree: out (${M}, ${N}), op(a) (${aM}, ${K}), op(b) (${bK}, ${bN})`);
  return { M, N, K, transA, transB, accumulate, alpha: checkFinite(alpha, "alpha") };
}

/** rope: inp (N, nh, hd) or (N*nh, hd) with pos (N) -> [N, nh, hd]. */
export function ropeDims(inp: Tensor, pos: Tensor): [number, number, number] {
  if (inp.shape.length < 2) throw new RangeError("rope: inp must be (N, nh, hd) or (N*nh, hd)");
  const hd = inp.shape[inp.shape.length - 1];
  if (hd % 2 !== 0) throw new RangeError(`rope: head dim ${hd} must be even`);
  const N = pos.size;
  const nh = inp.size / (N * hd);
  if (!Number.isInteger(nh)) throw new RangeError(`rope: inp size ${inp.size} is not N*nh*hd with N=${N}, hd=${hd}`);
  return [N, nh, hd];
}

/** attention: q (B, T, nh, hd), k (B, T, nkv, hd) -> [B, T, nh, nkv, hd]. */
export function attentionDims(q: Tensor, k: Tensor): [number, number, number, number, number] {
  if (q.shape.length !== 4 || k.shape.length !== 4) throw new RangeError("attention: q and k must be 4-D (B, T, heads, hd)");
  const [B, T, nh, hd] = q.shape;
  const nkv = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== T || k.shape[3] !== hd) throw new RangeError(`attention: k shape [${k.shape}] does not match q [${q.shape}]`);
  if (nkv === 0 || nh % nkv !== 0) throw new RangeError(`attention: query heads ${nh} must be a multiple of kv heads ${nkv}`);
  return [B, T, nh, nkv, hd];
}

/** rmsnorm: inp (N, C) viewed against weight (C) -> [N, C]. */
export function rmsnormDims(inp: Tensor, weight: Tensor, op: string): [number, number] {
  const C = weight.size;
  const N = inp.size / C;
  if (!Number.isInteger(N)) throw new RangeError(`${op}: inp size ${inp.size} is not a multiple of weight size ${C}`);
  return [N, C];
}

/** Kernel codes of the KL estimators and loss aggregations (the order native/cpu/grpo_loss.h uses). */
export const KL_CODE = { k1: 0, k2: 1, k3: 2 } as const;
export const AGG_CODE = { "token-mean": 0, "seq-mean-token-mean": 1, "seq-mean-token-sum": 2, "dr-grpo": 3 } as const;

export function checkSampleOptions(o: SampleOptions): void {
  checkFinite(o.temperature, "temperature");
  checkInt(o.topK, "topK", 0);
  if (!(o.topP > 0 && o.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${o.topP}`);
  if (!(o.minP >= 0 && o.minP <= 1)) throw new RangeError(`minP must be in [0, 1], got ${o.minP}`);
}

export function checkGrpoOptions(o: GrpoLossOptions): void {
  checkInt(o.B, "B");
  checkInt(o.T, "T");
  if (!(o.epsLow >= 0 && o.epsLow < 1)) throw new RangeError(`epsLow must be in [0, 1), got ${o.epsLow}`);
  if (!(o.epsHigh >= 0)) throw new RangeError(`epsHigh must be >= 0, got ${o.epsHigh}`);
  if (!(o.dualClip === 0 || o.dualClip > 1)) throw new RangeError(`dualClip must be 0 (off) or > 1, got ${o.dualClip}`);
  checkFinite(o.beta, "beta");
  checkFinite(o.entropyCoef, "entropyCoef");
  if (!(o.tisCap >= 0)) throw new RangeError(`tisCap must be >= 0 (0 = off), got ${o.tisCap}`);
  if (!(o.kl in KL_CODE)) throw new TypeError(`kl must be one of ${Object.keys(KL_CODE).join(", ")}, got ${o.kl}`);
  if (!(o.aggregation in AGG_CODE)) throw new TypeError(`aggregation must be one of ${Object.keys(AGG_CODE).join(", ")}, got ${o.aggregation}`);
  if (o.maxCompletionLength !== undefined) checkInt(o.maxCompletionLength, "maxCompletionLength");
}

function checkTemperature(temperature: number): number {
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
  return temperature;
}

/** logprobFromLogits: logits (N, V), logprob/entropy/targets (N) -> [N, V]. */
export function logprobFromLogitsDims(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): [number, number] {
  const [N, V] = rowsCols(logits);
  for (const [t, nm] of [[logprob, "logprob"], [entropy, "entropy"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
  checkTemperature(temperature);
  return [N, V];
}

/** sample: logits (B, V), ids (B), seeds (B) -> [B, V]. */
export function sampleDims(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): [number, number] {
  const [B, V] = rowsCols(logits);
  checkSize(ids, "ids", B, "B");
  if (!(seeds instanceof Uint32Array) || seeds.length !== B) throw new RangeError(`sample: seeds must be a Uint32Array of length B=${B}`);
  checkSampleOptions(o);
  return [B, V];
}

/** linear log-prob: hidden (N, H), weight (V, H), per-token tensors (N) -> [N, H, V]. */
export function linearLogprobDims(op: string, hidden: Tensor, weight: Tensor, perToken: [Tensor, string][], temperature: number): [number, number, number] {
  const [N, H] = rowsCols(hidden);
  const [V, WH] = rowsCols(weight);
  if (WH !== H) throw new RangeError(`${op}: weight (${V}, ${WH}) does not match hidden size ${H}`);
  for (const [t, nm] of perToken) checkSize(t, nm, N, "N");
  checkTemperature(temperature);
  return [N, H, V];
}

/** grpoLoss: per-token tensors (B*T), advantages (B), stats; optional inputs required by the options. */
export function grpoLossDims(dlogprob: Tensor, dentropy: Tensor, stats: Tensor, logprob: Tensor, oldLogprob: Tensor, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, entropy: Tensor | null, advantages: Tensor, mask: Tensor, o: GrpoLossOptions): number {
  checkGrpoOptions(o);
  const N = o.B * o.T;
  for (const [t, nm] of [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [logprob, "logprob"], [oldLogprob, "oldLogprob"], [mask, "mask"]] as const) checkSize(t, nm, N, "B*T");
  checkSize(advantages, "advantages", o.B, "B");
  checkSize(stats, "stats", GRPO_STATS.length, "GRPO_STATS.length");
  if (o.beta !== 0 && refLogprob === null) throw new TypeError("grpoLoss: refLogprob is required when beta != 0");
  if (o.tisCap !== 0 && rolloutLogprob === null) throw new TypeError("grpoLoss: rolloutLogprob is required when tisCap != 0");
  if (o.entropyCoef !== 0 && entropy === null) throw new TypeError("grpoLoss: entropy is required when entropyCoef != 0");
  for (const [t, nm] of [[refLogprob, "refLogprob"], [rolloutLogprob, "rolloutLogprob"], [entropy, "entropy"]] as const) if (t) checkSize(t, nm, N, "B*T");
  return N;
}

/** linearGrpoLoss: hidden (N, H), weight (V, H), per-token tensors (N = B*T), advantages (B) -> [N, H, V]. */
export function linearGrpoLossDims(dhidden: Tensor, dweight: Tensor | null, stats: Tensor, logprob: Tensor, entropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, oldLogprob: Tensor | null, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, advantages: Tensor, mask: Tensor, temperature: number, o: LinearGrpoLossOptions): [number, number, number] {
  const op = "linearGrpoLoss";
  checkGrpoOptions(o);
  if (o.lossScale !== undefined) checkFinite(o.lossScale, "lossScale");
  const perToken: [Tensor, string][] = [[logprob, "logprob"], [entropy, "entropy"], [targets, "targets"], [mask, "mask"]];
  for (const [t, nm] of [[oldLogprob, "oldLogprob"], [refLogprob, "refLogprob"], [rolloutLogprob, "rolloutLogprob"]] as const) if (t) perToken.push([t, nm]);
  const [N, H, V] = linearLogprobDims(op, hidden, weight, perToken, temperature);
  if (N !== o.B * o.T) throw new RangeError(`${op}: hidden has ${N} rows, expected B*T = ${o.B * o.T}`);
  checkSize(dhidden, "dhidden", N * H, "N*H");
  if (dweight) checkSize(dweight, "dweight", V * H, "V*H");
  checkSize(advantages, "advantages", o.B, "B");
  checkSize(stats, "stats", GRPO_STATS.length, "GRPO_STATS.length");
  if (o.beta !== 0 && refLogprob === null) throw new TypeError(`${op}: refLogprob is required when beta != 0`);
  if (o.tisCap !== 0 && rolloutLogprob === null) throw new TypeError(`${op}: rolloutLogprob is required when tisCap != 0`);
  return [N, H, V];
}

/** linearSequenceLoss: linearLogprobDims plus segment (N) in [-1, S) and groupOf (S) in [0, S). */
export function linearSequenceLossDims(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, segment: Int32Array, groupOf: Int32Array, temperature: number): [number, number, number] {
  const op = "linearSequenceLoss";
  const [N, H, V] = linearLogprobDims(op, hidden, weight, [[logprob, "logprob"], [entropy, "entropy"], [targets, "targets"]], temperature);
  checkSize(dhidden, "dhidden", N * H, "N*H");
  if (dweight) checkSize(dweight, "dweight", V * H, "V*H");
  if (!(segment instanceof Int32Array) || segment.length !== N) throw new RangeError(`${op}: segment must be an Int32Array of N = ${N} entries`);
  if (!(groupOf instanceof Int32Array)) throw new TypeError(`${op}: groupOf must be an Int32Array`);
  const S = groupOf.length;
  for (const [i, s] of segment.entries()) if (s < -1 || s >= S) throw new RangeError(`${op}: segment[${i}] = ${s} is outside [-1, ${S})`);
  for (const [s, g] of groupOf.entries()) if (g < 0 || g >= S) throw new RangeError(`${op}: groupOf[${s}] = ${g} is outside [0, ${S})`);
  return [N, H, V];
}
