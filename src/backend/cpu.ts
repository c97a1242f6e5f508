// CPU backend: tensors are host typed arrays, ops call the C++ addon (native/cpu) directly.
// It is the reference every other backend is tested against.
import {
  GRPO_STATS,
  numel,
  type AdamWOptions,
  type Backend,
  type DType,
  type GrpoLossOptions,
  type MatmulOptions,
  type SampleOptions,
  type Tensor,
} from "./backend.js";
import { checkFinite, checkInt, checkSize, checkTensor, rowsCols } from "./check.js";
import { loadAddon, type NativeAddon } from "./native.js";

export class CpuTensor implements Tensor {
  readonly size: number;
  private _data: Float32Array | Int32Array | null;
  constructor(
    readonly backend: CpuBackend,
    readonly shape: readonly number[],
    readonly dtype: DType,
    data?: Float32Array | Int32Array,
  ) {
    this.size = numel(shape);
    this._data = data ?? (dtype === "f32" ? new Float32Array(this.size) : new Int32Array(this.size));
    if (this._data.length !== this.size) throw new RangeError(`data has ${this._data.length} elements, shape [${shape.join(", ")}] needs ${this.size}`);
  }
  get disposed(): boolean {
    return this._data === null;
  }
  /** The backing array (no copy). Valid until dispose(). */
  get data(): Float32Array | Int32Array {
    if (!this._data) throw new TypeError("tensor was disposed");
    return this._data;
  }
  get f32(): Float32Array {
    return this.data as Float32Array;
  }
  get i32(): Int32Array {
    return this.data as Int32Array;
  }
  dispose(): void {
    this._data = null;
  }
}

const KL_CODE = { k1: 0, k2: 1, k3: 2 } as const;
const AGG_CODE = { "token-mean": 0, "seq-mean-token-mean": 1, "seq-mean-token-sum": 2, "dr-grpo": 3 } as const;

export class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly native: NativeAddon;

  constructor(opts: { threads?: number } = {}) {
    this.native = loadAddon();
    if (opts.threads !== undefined) this.native.setThreads(checkInt(opts.threads, "threads"));
  }

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype: DType = "f32"): CpuTensor {
    for (const d of shape) checkInt(d, "shape dimension", 0);
    return new CpuTensor(this, [...shape], dtype);
  }
  upload(data: Float32Array | Int32Array, shape: readonly number[]): CpuTensor {
    const dtype: DType = data instanceof Int32Array ? "i32" : "f32";
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) throw new TypeError("upload: data must be a Float32Array or Int32Array");
    return new CpuTensor(this, [...shape], dtype, data.slice());
  }
  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }
  /** Synchronous host copy: the CPU backend can afford it. */
  readSync(t: Tensor): Float32Array | Int32Array {
    return this.arr(t, "t", t.dtype).slice();
  }
  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const dst = this.arr(t, "t", t.dtype);
    if (offset < 0 || offset + data.length > dst.length) throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in ${dst.length}`);
    dst.set(data, offset);
  }
  copy(dst: Tensor, src: Tensor, dstOffset = 0, srcOffset = 0, count?: number): void {
    const d = this.arr(dst, "dst", dst.dtype);
    const s = this.arr(src, "src", dst.dtype);
    const n = count ?? Math.min(d.length - dstOffset, s.length - srcOffset);
    if (dstOffset < 0 || srcOffset < 0 || dstOffset + n > d.length || srcOffset + n > s.length)
      throw new RangeError(`copy: range out of bounds (dst ${dstOffset}+${n} of ${d.length}, src ${srcOffset}+${n} of ${s.length})`);
    d.set(s.subarray(srcOffset, srcOffset + n), dstOffset);
  }
  view(t: Tensor, shape: readonly number[]): CpuTensor {
    const data = this.arr(t, "t", t.dtype);
    for (const d of shape) checkInt(d, "shape dimension", 0);
    if (numel(shape) !== data.length) throw new RangeError(`view: shape [${shape.join(", ")}] has ${numel(shape)} elements, tensor has ${data.length}`);
    return new CpuTensor(this, [...shape], t.dtype, data);
  }
  fill(t: Tensor, value: number): void {
    this.arr(t, "t", t.dtype).fill(value);
  }
  async sync(): Promise<void> {}
  destroy(): void {}

  private arr(t: Tensor, name: string, dtype: DType = "f32"): Float32Array | Int32Array {
    return (checkTensor(t, name, this, dtype) as CpuTensor).data;
  }
  private f(t: Tensor, name: string): Float32Array {
    return this.arr(t, name, "f32") as Float32Array;
  }
  private i(t: Tensor, name: string): Int32Array {
    return this.arr(t, name, "i32") as Int32Array;
  }
  private fOpt(t: Tensor | null, name: string, size: number, what: string): Float32Array | null {
    if (t === null) return null;
    checkSize(t, name, size, what);
    return this.f(t, name);
  }

  // ---- elementwise --------------------------------------------------------------------
  add(out: Tensor, a: Tensor, b: Tensor): void {
    const n = out.size;
    checkSize(a, "a", n, "out.size");
    checkSize(b, "b", n, "out.size");
    this.native.add(this.f(out, "out"), this.f(a, "a"), this.f(b, "b"), n);
  }
  accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
    checkSize(src, "src", dst.size, "dst.size");
    this.native.accumulate(this.f(dst, "dst"), this.f(src, "src"), checkFinite(alpha, "alpha"), dst.size);
  }
  scale(t: Tensor, alpha: number): void {
    this.native.scale(this.f(t, "t"), checkFinite(alpha, "alpha"), t.size);
  }
  sumSquares(out: Tensor, t: Tensor): void {
    checkSize(out, "out", 1, "1");
    this.native.sumSquares(this.f(out, "out"), this.f(t, "t"), t.size);
  }

  // ---- decoder ops --------------------------------------------------------------------
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void {
    const [V, C] = rowsCols(table);
    const N = ids.size;
    checkSize(out, "out", N * C, "N*C");
    this.native.embeddingForward(this.f(out, "out"), this.i(ids, "ids"), this.f(table, "table"), N, C, V);
  }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): void {
    const [V, C] = rowsCols(dtable);
    const N = ids.size;
    checkSize(dout, "dout", N * C, "N*C");
    this.native.embeddingBackward(this.f(dtable, "dtable"), this.f(dout, "dout"), this.i(ids, "ids"), N, C, V);
  }
  matmul(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions = {}): void {
    const { transA = false, transB = false, accumulate = false, alpha = 1 } = opts;
    const [M, N] = rowsCols(out);
    if (a.shape.length < 2 || b.shape.length < 2) throw new RangeError("matmul: a and b must be at least 2-D");
    const [ar, ac] = rowsCols(a);
    const [br, bc] = rowsCols(b);
    const aM = transA ? ac : ar, K = transA ? ar : ac;
    const bK = transB ? bc : br, bN = transB ? br : bc;
    if (aM !== M || bN !== N || bK !== K)
      throw new RangeError(`matmul: shapes do not agree: out (${M}, ${N}), op(a) (${aM}, ${K}), op(b) (${bK}, ${bN})`);
    this.native.matmul(this.f(out, "out"), this.f(a, "a"), this.f(b, "b"), M, N, K, transA, transB, accumulate, checkFinite(alpha, "alpha"));
  }
  biasAdd(out: Tensor, bias: Tensor): void {
    const [N, C] = rowsCols(out);
    checkSize(bias, "bias", C, "C");
    this.native.biasAdd(this.f(out, "out"), this.f(bias, "bias"), N, C);
  }
  biasBackward(dbias: Tensor, dout: Tensor): void {
    const [N, C] = rowsCols(dout);
    checkSize(dbias, "dbias", C, "C");
    this.native.biasBackward(this.f(dbias, "dbias"), this.f(dout, "dout"), N, C);
  }
  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const C = weight.size;
    const N = inp.size / C;
    if (!Number.isInteger(N)) throw new RangeError(`rmsnormForward: inp size ${inp.size} is not a multiple of weight size ${C}`);
    checkSize(out, "out", inp.size, "inp.size");
    checkSize(rstd, "rstd", N, "N");
    this.native.rmsnormForward(this.f(out, "out"), this.f(rstd, "rstd"), this.f(inp, "inp"), this.f(weight, "weight"), N, C, checkFinite(eps, "eps"));
  }
  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void {
    const C = weight.size;
    const N = inp.size / C;
    if (!Number.isInteger(N)) throw new RangeError(`rmsnormBackward: inp size ${inp.size} is not a multiple of weight size ${C}`);
    checkSize(dinp, "dinp", inp.size, "inp.size");
    checkSize(dout, "dout", inp.size, "inp.size");
    checkSize(dweight, "dweight", C, "C");
    checkSize(rstd, "rstd", N, "N");
    this.native.rmsnormBackward(this.f(dinp, "dinp"), this.f(dweight, "dweight"), this.f(dout, "dout"), this.f(inp, "inp"), this.f(weight, "weight"), this.f(rstd, "rstd"), N, C);
  }
  private ropeDims(inp: Tensor, pos: Tensor): [number, number, number] {
    if (inp.shape.length < 2) throw new RangeError("rope: inp must be (N, nh, hd) or (N*nh, hd)");
    const hd = inp.shape[inp.shape.length - 1];
    if (hd % 2 !== 0) throw new RangeError(`rope: head dim ${hd} must be even`);
    const N = pos.size;
    const nh = inp.size / (N * hd);
    if (!Number.isInteger(nh)) throw new RangeError(`rope: inp size ${inp.size} is not N*nh*hd with N=${N}, hd=${hd}`);
    return [N, nh, hd];
  }
  ropeForward(out: Tensor, inp: Tensor, pos: Tensor, theta: number): void {
    const [N, nh, hd] = this.ropeDims(inp, pos);
    checkSize(out, "out", inp.size, "inp.size");
    this.native.ropeForward(this.f(out, "out"), this.f(inp, "inp"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
  }
  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void {
    const [N, nh, hd] = this.ropeDims(dout, pos);
    checkSize(dinp, "dinp", dout.size, "dout.size");
    this.native.ropeBackward(this.f(dinp, "dinp"), this.f(dout, "dout"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
  }
  private attnDims(q: Tensor, k: Tensor): [number, number, number, number, number] {
    if (q.shape.length !== 4 || k.shape.length !== 4) throw new RangeError("attention: q and k must be 4-D (B, T, heads, hd)");
    const [B, T, nh, hd] = q.shape;
    const nkv = k.shape[2];
    if (k.shape[0] !== B || k.shape[1] !== T || k.shape[3] !== hd) throw new RangeError(`attention: k shape [${k.shape}] does not match q [${q.shape}]`);
    if (nh % nkv !== 0) throw new RangeError(`attention: query heads ${nh} must be a multiple of kv heads ${nkv}`);
    return [B, T, nh, nkv, hd];
  }
  attentionForward(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor): void {
    const [B, T, nh, nkv, hd] = this.attnDims(q, k);
    checkSize(v, "v", k.size, "k.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    this.native.attentionForward(this.f(out, "out"), this.f(lse, "lse"), this.f(q, "q"), this.f(k, "k"), this.f(v, "v"), B, T, nh, nkv, hd);
  }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor): void {
    const [B, T, nh, nkv, hd] = this.attnDims(q, k);
    for (const [t, n] of [[dq, "dq"], [dout, "dout"], [out, "out"]] as const) checkSize(t, n, q.size, "q.size");
    for (const [t, n] of [[dk, "dk"], [dv, "dv"], [v, "v"]] as const) checkSize(t, n, k.size, "k.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    this.native.attentionBackward(this.f(dq, "dq"), this.f(dk, "dk"), this.f(dv, "dv"), this.f(dout, "dout"), this.f(q, "q"), this.f(k, "k"), this.f(v, "v"), this.f(out, "out"), this.f(lse, "lse"), B, T, nh, nkv, hd);
  }
  attentionDecode(out: Tensor, q: Tensor, kCache: Tensor, vCache: Tensor, pos: Tensor): void {
    if (q.shape.length !== 4 || kCache.shape.length !== 4) throw new RangeError("attentionDecode: q (B, Tq, nh, hd) and caches (B, S, nkv, hd) must be 4-D");
    const [B, Tq, nh, hd] = q.shape;
    const [cB, S, nkv, chd] = kCache.shape;
    if (cB !== B || chd !== hd) throw new RangeError(`attentionDecode: cache shape [${kCache.shape}] does not match q [${q.shape}]`);
    if (nh % nkv !== 0) throw new RangeError(`attentionDecode: query heads ${nh} must be a multiple of kv heads ${nkv}`);
    checkSize(vCache, "vCache", kCache.size, "kCache.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(pos, "pos", B, "B");
    this.native.attentionDecode(this.f(out, "out"), this.f(q, "q"), this.f(kCache, "kCache"), this.f(vCache, "vCache"), this.i(pos, "pos"), B, Tq, S, nh, nkv, hd);
  }
  kvWrite(cache: Tensor, x: Tensor, pos: Tensor): void {
    if (cache.shape.length !== 4 || x.shape.length !== 4) throw new RangeError("kvWrite: cache (B, S, nkv, hd) and x (B, Tq, nkv, hd) must be 4-D");
    const [B, S, nkv, hd] = cache.shape;
    const Tq = x.shape[1];
    if (x.shape[0] !== B || x.shape[2] !== nkv || x.shape[3] !== hd) throw new RangeError(`kvWrite: x shape [${x.shape}] does not match cache [${cache.shape}]`);
    checkSize(pos, "pos", B, "B");
    this.native.kvWrite(this.f(cache, "cache"), this.f(x, "x"), this.i(pos, "pos"), B, Tq, S, nkv, hd);
  }
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
    checkSize(gate, "gate", out.size, "out.size");
    checkSize(up, "up", out.size, "out.size");
    this.native.swigluForward(this.f(out, "out"), this.f(gate, "gate"), this.f(up, "up"), out.size);
  }
  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void {
    const n = dout.size;
    for (const [t, nm] of [[dgate, "dgate"], [dup, "dup"], [gate, "gate"], [up, "up"]] as const) checkSize(t, nm, n, "dout.size");
    this.native.swigluBackward(this.f(dgate, "dgate"), this.f(dup, "dup"), this.f(dout, "dout"), this.f(gate, "gate"), this.f(up, "up"), n);
  }
  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(targets, "targets", N, "N");
    checkSize(loss, "loss", N, "N");
    this.native.crossEntropyForward(this.f(loss, "loss"), this.f(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(dlogits, "dlogits", N * V, "N*V");
    checkSize(targets, "targets", N, "N");
    checkSize(dloss, "dloss", N, "N");
    this.native.crossEntropyBackward(this.f(dlogits, "dlogits"), this.f(dloss, "dloss"), this.f(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void {
    const [N, C] = rowsCols(inp);
    const M = idx.size;
    checkSize(out, "out", M * C, "M*C");
    this.native.gatherRows(this.f(out, "out"), this.f(inp, "inp"), this.i(idx, "idx"), M, N, C);
  }
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions): void {
    const n = param.size;
    for (const [t, nm] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) checkSize(t, nm, n, "param.size");
    checkInt(o.step, "step");
    this.native.adamw(this.f(param, "param"), this.f(grad, "grad"), this.f(m, "m"), this.f(v, "v"), n, checkFinite(o.lr, "lr"), checkFinite(o.beta1, "beta1"), checkFinite(o.beta2, "beta2"), checkFinite(o.eps, "eps"), checkFinite(o.weightDecay, "weightDecay"), o.step);
  }

  // ---- fused kernels ------------------------------------------------------------------
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void {
    const [N, V] = rowsCols(logits);
    for (const [t, nm] of [[logprob, "logprob"], [entropy, "entropy"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.native.logprobFromLogits(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(logits, "logits"), this.i(targets, "targets"), N, V, temperature);
  }
  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): void {
    const [B, V] = rowsCols(logits);
    checkSize(ids, "ids", B, "B");
    if (!(seeds instanceof Uint32Array) || seeds.length !== B) throw new RangeError(`sample: seeds must be a Uint32Array of length B=${B}`);
    checkSampleOptions(o);
    this.native.sample(this.i(ids, "ids"), this.f(logits, "logits"), seeds, B, V, o.temperature, o.topK, o.topP, o.minP, o.greedy ?? false);
  }
  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void {
    const [N, H] = rowsCols(hidden);
    const [V, WH] = rowsCols(weight);
    if (WH !== H) throw new RangeError(`linearLogprobForward: weight (${V}, ${WH}) does not match hidden size ${H}`);
    for (const [t, nm] of [[logprob, "logprob"], [entropy, "entropy"], [lse, "lse"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.native.linearLogprobForward(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(lse, "lse"), this.f(hidden, "hidden"), this.f(weight, "weight"), this.i(targets, "targets"), N, H, V, temperature);
  }
  linearLogprobBackward(dhidden: Tensor, dweight: Tensor, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void {
    const [N, H] = rowsCols(hidden);
    const [V, WH] = rowsCols(weight);
    if (WH !== H) throw new RangeError(`linearLogprobBackward: weight (${V}, ${WH}) does not match hidden size ${H}`);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    checkSize(dweight, "dweight", V * H, "V*H");
    for (const [t, nm] of [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [lse, "lse"], [entropy, "entropy"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.native.linearLogprobBackward(this.f(dhidden, "dhidden"), this.f(dweight, "dweight"), this.f(dlogprob, "dlogprob"), this.f(dentropy, "dentropy"), this.f(hidden, "hidden"), this.f(weight, "weight"), this.i(targets, "targets"), this.f(lse, "lse"), this.f(entropy, "entropy"), N, H, V, temperature);
  }
  grpoLoss(dlogprob: Tensor, dentropy: Tensor, stats: Tensor, logprob: Tensor, oldLogprob: Tensor, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, entropy: Tensor | null, advantages: Tensor, mask: Tensor, o: GrpoLossOptions): void {
    checkGrpoOptions(o);
    const N = o.B * o.T;
    for (const [t, nm] of [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [logprob, "logprob"], [oldLogprob, "oldLogprob"], [mask, "mask"]] as const) checkSize(t, nm, N, "B*T");
    checkSize(advantages, "advantages", o.B, "B");
    checkSize(stats, "stats", GRPO_STATS.length, "GRPO_STATS.length");
    if (o.beta !== 0 && refLogprob === null) throw new TypeError("grpoLoss: refLogprob is required when beta != 0");
    if (o.tisCap !== 0 && rolloutLogprob === null) throw new TypeError("grpoLoss: rolloutLogprob is required when tisCap != 0");
    if (o.entropyCoef !== 0 && entropy === null) throw new TypeError("grpoLoss: entropy is required when entropyCoef != 0");
    this.native.grpoLoss(
      this.f(dlogprob, "dlogprob"), this.f(dentropy, "dentropy"), this.f(stats, "stats"), this.f(logprob, "logprob"), this.f(oldLogprob, "oldLogprob"),
      this.fOpt(refLogprob, "refLogprob", N, "B*T"), this.fOpt(rolloutLogprob, "rolloutLogprob", N, "B*T"), this.fOpt(entropy, "entropy", N, "B*T"),
      this.f(advantages, "advantages"), this.f(mask, "mask"), o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap,
      AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
    );
  }
}

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
