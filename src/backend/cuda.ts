// CUDA backend: tensors are device allocations (cudaMalloc) named by their address, ops call
// the cuda_* functions of the addon, which forward to libanvil_cuda.so (native/cuda/*.cu),
// loaded on first use. Kernels run in order on one stream: op calls return once the work is
// enqueued; read() and sync() wait for it. Validation is the CPU backend's, so both reject a
// bad call with the same message. One CudaBackend (one device, one thread) per process: the
// kernels share a scratch workspace. Kernels cannot throw: an out-of-range id or cache position
// zeroes/skips its row and is reported by the next sync().
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
import { checkGrpoOptions, checkSampleOptions } from "./cpu.js";
import { loadAddon, type CudaInfo, type NativeAddon } from "./native.js";

type P = bigint;
type Pn = bigint | null;

/** The addon's CUDA exports (native/addon/cuda_binding.cpp): device pointers instead of typed arrays. */
export interface CudaOps {
  cuda_setDevice(device: number): void;
  cuda_malloc(bytes: number): P;
  cuda_free(ptr: P): void;
  cuda_upload(dst: P, src: Float32Array | Int32Array | Uint32Array): void;
  cuda_download(dst: Float32Array | Int32Array | Uint32Array, src: P): void;
  cuda_copy(dst: P, src: P, bytes: number): void;
  cuda_fill32(dst: P, bits: number, count: number): void;
  cuda_memset(dst: P, value: number, bytes: number): void;
  /** Waits for the queue; throws on an asynchronous error or an out-of-range id seen by a kernel. */
  cuda_sync(): void;

  cuda_add(out: P, a: P, b: P, n: number): void;
  cuda_accumulate(dst: P, src: P, alpha: number, n: number): void;
  cuda_scale(t: P, alpha: number, n: number): void;
  cuda_sumSquares(out: P, t: P, n: number): void;
  cuda_embeddingForward(out: P, ids: P, table: P, N: number, C: number, V: number): void;
  cuda_embeddingBackward(dtable: P, dout: P, ids: P, N: number, C: number, V: number): void;
  cuda_matmul(out: P, a: P, b: P, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void;
  cuda_biasAdd(out: P, bias: P, N: number, C: number): void;
  cuda_biasBackward(dbias: P, dout: P, N: number, C: number): void;
  cuda_rmsnormForward(out: P, rstd: P, inp: P, weight: P, N: number, C: number, eps: number): void;
  cuda_rmsnormBackward(dinp: P, dweight: P, dout: P, inp: P, weight: P, rstd: P, N: number, C: number): void;
  cuda_ropeForward(out: P, inp: P, pos: P, N: number, nh: number, hd: number, theta: number): void;
  cuda_ropeBackward(dinp: P, dout: P, pos: P, N: number, nh: number, hd: number, theta: number): void;
  cuda_attentionForward(out: P, lse: P, q: P, k: P, v: P, B: number, T: number, nh: number, nkv: number, hd: number): void;
  cuda_attentionBackward(dq: P, dk: P, dv: P, dout: P, q: P, k: P, v: P, out: P, lse: P, B: number, T: number, nh: number, nkv: number, hd: number): void;
  cuda_attentionDecode(out: P, q: P, kCache: P, vCache: P, pos: P, B: number, Tq: number, S: number, nh: number, nkv: number, hd: number): void;
  cuda_kvWrite(cache: P, x: P, pos: P, B: number, Tq: number, S: number, nkv: number, hd: number): void;
  cuda_swigluForward(out: P, gate: P, up: P, n: number): void;
  cuda_swigluBackward(dgate: P, dup: P, dout: P, gate: P, up: P, n: number): void;
  cuda_crossEntropyForward(loss: P, logits: P, targets: P, N: number, V: number): void;
  cuda_crossEntropyBackward(dlogits: P, dloss: P, logits: P, targets: P, N: number, V: number): void;
  cuda_gatherRows(out: P, inp: P, idx: P, M: number, N: number, C: number): void;
  cuda_adamw(param: P, grad: P, m: P, v: P, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  cuda_logprobFromLogits(logprob: P, entropy: P, logits: P, targets: P, N: number, V: number, temperature: number): void;
  cuda_sample(ids: P, logits: P, seeds: Uint32Array, B: number, V: number, temperature: number, topK: number, topP: number, minP: number, greedy: boolean): void;
  cuda_linearLogprobForward(logprob: P, entropy: P, lse: P, hidden: P, weight: P, targets: P, N: number, H: number, V: number, temperature: number): void;
  cuda_linearLogprobBackward(dhidden: P, dweight: P, dlogprob: P, dentropy: P, hidden: P, weight: P, targets: P, lse: P, entropy: P, N: number, H: number, V: number, temperature: number): void;
  cuda_grpoLoss(dlogprob: P, dentropy: P, stats: P, logprob: P, oldLogprob: P, refLogprob: Pn, rolloutLogprob: Pn, entropy: Pn, advantages: P, mask: P, B: number, T: number, epsLow: number, epsHigh: number, dualClip: number, beta: number, kl: number, entropyCoef: number, tisCap: number, aggregation: number, maxCompletionLength: number): void;
}

type CudaAddon = NativeAddon & CudaOps;

/** What the CUDA library reports on this machine (never throws; `built: false` without the addon). */
export function cudaInfo(): CudaInfo {
  let addon: NativeAddon;
  try {
    addon = loadAddon();
  } catch (e) {
    return { built: false, loaded: false, library: null, devices: 0, deviceNames: [], error: (e as Error).message };
  }
  return addon.cudaInfo();
}

// Memory not freed by dispose() is freed when the tensor object is collected.
const collector = new FinalizationRegistry<{ addon: CudaAddon; ptr: bigint }>(({ addon, ptr }) => {
  try {
    addon.cuda_free(ptr);
  } catch {
    // Nothing useful to do about a failed free during garbage collection.
  }
});

export class CudaTensor implements Tensor {
  readonly size: number;
  private _ptr: bigint | null;
  constructor(
    readonly backend: CudaBackend,
    readonly shape: readonly number[],
    readonly dtype: DType,
    ptr: bigint,
    /** Set for a Backend.view(): the tensor that owns the memory (kept alive by this reference). */
    readonly base: CudaTensor | null = null,
  ) {
    this.size = numel(shape);
    this._ptr = ptr;
    if (!base) collector.register(this, { addon: backend.addon, ptr }, this);
  }
  get disposed(): boolean {
    return this._ptr === null || (this.base !== null && this.base.disposed);
  }
  /** Device address (valid until dispose()). */
  get ptr(): bigint {
    if (this._ptr === null || (this.base && this.base.disposed)) throw new TypeError("tensor was disposed");
    return this._ptr;
  }
  dispose(): void {
    if (this._ptr === null) return;
    if (this.base) {
      this._ptr = null; // a view never frees its base's memory
      return;
    }
    collector.unregister(this);
    const p = this._ptr;
    this._ptr = null;
    this.backend.addon.cuda_free(p);
  }
}

const KL_CODE = { k1: 0, k2: 1, k3: 2 } as const;
const AGG_CODE = { "token-mean": 0, "seq-mean-token-mean": 1, "seq-mean-token-sum": 2, "dr-grpo": 3 } as const;
const F32_BITS = new Uint32Array(1);
const F32_VIEW = new Float32Array(F32_BITS.buffer);

export class CudaBackend implements Backend {
  readonly name = "cuda" as const;

  private constructor(
    readonly addon: CudaAddon,
    readonly device: number,
    readonly deviceName: string,
  ) {}

  /**
   * Opens CUDA device `device` (default 0). Rejects with the reason when CUDA cannot be used:
   * not built, library not loadable, no driver (error 35) or no device.
   */
  static async create(opts: { device?: number } = {}): Promise<CudaBackend> {
    const device = opts.device ?? 0;
    checkInt(device, "device", 0);
    const addon = loadAddon() as CudaAddon;
    const info = addon.cudaInfo();
    if (!info.built || !info.loaded || info.devices === 0)
      throw new Error(`CUDA backend unavailable: ${info.error ?? "no CUDA-capable device is detected"}`);
    if (device >= info.devices) throw new RangeError(`CUDA device ${device} does not exist (found ${info.devices})`);
    addon.cuda_setDevice(device);
    return new CudaBackend(addon, device, info.deviceNames[device] ?? `cuda:${device}`);
  }

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype: DType = "f32"): CudaTensor {
    for (const d of shape) checkInt(d, "shape dimension", 0);
    const n = numel(shape);
    const ptr = this.addon.cuda_malloc(n * 4);
    if (n > 0) this.addon.cuda_memset(ptr, 0, n * 4);
    return new CudaTensor(this, [...shape], dtype, ptr);
  }
  upload(data: Float32Array | Int32Array, shape: readonly number[]): CudaTensor {
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) throw new TypeError("upload: data must be a Float32Array or Int32Array");
    for (const d of shape) checkInt(d, "shape dimension", 0);
    if (numel(shape) !== data.length) throw new RangeError(`data has ${data.length} elements, shape [${shape.join(", ")}] needs ${numel(shape)}`);
    const ptr = this.addon.cuda_malloc(data.length * 4);
    const t = new CudaTensor(this, [...shape], data instanceof Int32Array ? "i32" : "f32", ptr);
    this.addon.cuda_upload(ptr, data);
    return t;
  }
  view(t: Tensor, shape: readonly number[]): CudaTensor {
    const ptr = this.p(t, "t", t.dtype);
    for (const d of shape) checkInt(d, "shape dimension", 0);
    if (numel(shape) !== t.size) throw new RangeError(`view: shape [${shape.join(", ")}] has ${numel(shape)} elements, tensor has ${t.size}`);
    const c = t as CudaTensor;
    return new CudaTensor(this, [...shape], t.dtype, ptr, c.base ?? c);
  }
  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    const ptr = this.p(t, "t", t.dtype);
    const out = t.dtype === "f32" ? new Float32Array(t.size) : new Int32Array(t.size);
    this.addon.cuda_download(out, ptr);
    return out;
  }
  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const ptr = this.p(t, "t", t.dtype);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > t.size)
      throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in ${t.size}`);
    if ((t.dtype === "f32") !== (data instanceof Float32Array)) throw new TypeError(`write: data type does not match tensor dtype ${t.dtype}`);
    this.addon.cuda_upload(ptr + BigInt(offset * 4), data);
  }
  copy(dst: Tensor, src: Tensor, dstOffset = 0, srcOffset = 0, count?: number): void {
    const d = this.p(dst, "dst", dst.dtype);
    const s = this.p(src, "src", dst.dtype);
    const n = count ?? Math.min(dst.size - dstOffset, src.size - srcOffset);
    if (dstOffset < 0 || srcOffset < 0 || n < 0 || dstOffset + n > dst.size || srcOffset + n > src.size)
      throw new RangeError(`copy: range out of bounds (dst ${dstOffset}+${n} of ${dst.size}, src ${srcOffset}+${n} of ${src.size})`);
    this.addon.cuda_copy(d + BigInt(dstOffset * 4), s + BigInt(srcOffset * 4), n * 4);
  }
  fill(t: Tensor, value: number): void {
    const ptr = this.p(t, "t", t.dtype);
    let bits: number;
    if (t.dtype === "f32") {
      F32_VIEW[0] = value;
      bits = F32_BITS[0];
    } else {
      bits = (value | 0) >>> 0;
    }
    this.addon.cuda_fill32(ptr, bits, t.size);
  }
  async sync(): Promise<void> {
    this.addon.cuda_sync();
  }
  destroy(): void {
    this.addon.cuda_sync();
  }

  private p(t: Tensor, name: string, dtype: DType = "f32"): bigint {
    return (checkTensor(t, name, this, dtype) as CudaTensor).ptr;
  }
  private i(t: Tensor, name: string): bigint {
    return this.p(t, name, "i32");
  }
  private pOpt(t: Tensor | null, name: string, size: number, what: string): bigint | null {
    if (t === null) return null;
    checkSize(t, name, size, what);
    return this.p(t, name);
  }

  // ---- elementwise --------------------------------------------------------------------
  add(out: Tensor, a: Tensor, b: Tensor): void {
    const n = out.size;
    checkSize(a, "a", n, "out.size");
    checkSize(b, "b", n, "out.size");
    this.addon.cuda_add(this.p(out, "out"), this.p(a, "a"), this.p(b, "b"), n);
  }
  accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
    checkSize(src, "src", dst.size, "dst.size");
    this.addon.cuda_accumulate(this.p(dst, "dst"), this.p(src, "src"), checkFinite(alpha, "alpha"), dst.size);
  }
  scale(t: Tensor, alpha: number): void {
    this.addon.cuda_scale(this.p(t, "t"), checkFinite(alpha, "alpha"), t.size);
  }
  sumSquares(out: Tensor, t: Tensor): void {
    checkSize(out, "out", 1, "1");
    this.addon.cuda_sumSquares(this.p(out, "out"), this.p(t, "t"), t.size);
  }

  // ---- decoder ops --------------------------------------------------------------------
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void {
    const [V, C] = rowsCols(table);
    const N = ids.size;
    checkSize(out, "out", N * C, "N*C");
    this.addon.cuda_embeddingForward(this.p(out, "out"), this.i(ids, "ids"), this.p(table, "table"), N, C, V);
  }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): void {
    const [V, C] = rowsCols(dtable);
    const N = ids.size;
    checkSize(dout, "dout", N * C, "N*C");
    this.addon.cuda_embeddingBackward(this.p(dtable, "dtable"), this.p(dout, "dout"), this.i(ids, "ids"), N, C, V);
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
    this.addon.cuda_matmul(this.p(out, "out"), this.p(a, "a"), this.p(b, "b"), M, N, K, transA, transB, accumulate, checkFinite(alpha, "alpha"));
  }
  biasAdd(out: Tensor, bias: Tensor): void {
    const [N, C] = rowsCols(out);
    checkSize(bias, "bias", C, "C");
    this.addon.cuda_biasAdd(this.p(out, "out"), this.p(bias, "bias"), N, C);
  }
  biasBackward(dbias: Tensor, dout: Tensor): void {
    const [N, C] = rowsCols(dout);
    checkSize(dbias, "dbias", C, "C");
    this.addon.cuda_biasBackward(this.p(dbias, "dbias"), this.p(dout, "dout"), N, C);
  }
  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const C = weight.size;
    const N = inp.size / C;
    if (!Number.isInteger(N)) throw new RangeError(`rmsnormForward: inp size ${inp.size} is not a multiple of weight size ${C}`);
    checkSize(out, "out", inp.size, "inp.size");
    checkSize(rstd, "rstd", N, "N");
    this.addon.cuda_rmsnormForward(this.p(out, "out"), this.p(rstd, "rstd"), this.p(inp, "inp"), this.p(weight, "weight"), N, C, checkFinite(eps, "eps"));
  }
  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void {
    const C = weight.size;
    const N = inp.size / C;
    if (!Number.isInteger(N)) throw new RangeError(`rmsnormBackward: inp size ${inp.size} is not a multiple of weight size ${C}`);
    checkSize(dinp, "dinp", inp.size, "inp.size");
    checkSize(dout, "dout", inp.size, "inp.size");
    checkSize(dweight, "dweight", C, "C");
    checkSize(rstd, "rstd", N, "N");
    this.addon.cuda_rmsnormBackward(this.p(dinp, "dinp"), this.p(dweight, "dweight"), this.p(dout, "dout"), this.p(inp, "inp"), this.p(weight, "weight"), this.p(rstd, "rstd"), N, C);
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
    this.addon.cuda_ropeForward(this.p(out, "out"), this.p(inp, "inp"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
  }
  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void {
    const [N, nh, hd] = this.ropeDims(dout, pos);
    checkSize(dinp, "dinp", dout.size, "dout.size");
    this.addon.cuda_ropeBackward(this.p(dinp, "dinp"), this.p(dout, "dout"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
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
    this.addon.cuda_attentionForward(this.p(out, "out"), this.p(lse, "lse"), this.p(q, "q"), this.p(k, "k"), this.p(v, "v"), B, T, nh, nkv, hd);
  }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor): void {
    const [B, T, nh, nkv, hd] = this.attnDims(q, k);
    for (const [t, n] of [[dq, "dq"], [dout, "dout"], [out, "out"]] as const) checkSize(t, n, q.size, "q.size");
    for (const [t, n] of [[dk, "dk"], [dv, "dv"], [v, "v"]] as const) checkSize(t, n, k.size, "k.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    this.addon.cuda_attentionBackward(this.p(dq, "dq"), this.p(dk, "dk"), this.p(dv, "dv"), this.p(dout, "dout"), this.p(q, "q"), this.p(k, "k"), this.p(v, "v"), this.p(out, "out"), this.p(lse, "lse"), B, T, nh, nkv, hd);
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
    this.addon.cuda_attentionDecode(this.p(out, "out"), this.p(q, "q"), this.p(kCache, "kCache"), this.p(vCache, "vCache"), this.i(pos, "pos"), B, Tq, S, nh, nkv, hd);
  }
  kvWrite(cache: Tensor, x: Tensor, pos: Tensor): void {
    if (cache.shape.length !== 4 || x.shape.length !== 4) throw new RangeError("kvWrite: cache (B, S, nkv, hd) and x (B, Tq, nkv, hd) must be 4-D");
    const [B, S, nkv, hd] = cache.shape;
    const Tq = x.shape[1];
    if (x.shape[0] !== B || x.shape[2] !== nkv || x.shape[3] !== hd) throw new RangeError(`kvWrite: x shape [${x.shape}] does not match cache [${cache.shape}]`);
    checkSize(pos, "pos", B, "B");
    this.addon.cuda_kvWrite(this.p(cache, "cache"), this.p(x, "x"), this.i(pos, "pos"), B, Tq, S, nkv, hd);
  }
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
    checkSize(gate, "gate", out.size, "out.size");
    checkSize(up, "up", out.size, "out.size");
    this.addon.cuda_swigluForward(this.p(out, "out"), this.p(gate, "gate"), this.p(up, "up"), out.size);
  }
  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void {
    const n = dout.size;
    for (const [t, nm] of [[dgate, "dgate"], [dup, "dup"], [gate, "gate"], [up, "up"]] as const) checkSize(t, nm, n, "dout.size");
    this.addon.cuda_swigluBackward(this.p(dgate, "dgate"), this.p(dup, "dup"), this.p(dout, "dout"), this.p(gate, "gate"), this.p(up, "up"), n);
  }
  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(targets, "targets", N, "N");
    checkSize(loss, "loss", N, "N");
    this.addon.cuda_crossEntropyForward(this.p(loss, "loss"), this.p(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(dlogits, "dlogits", N * V, "N*V");
    checkSize(targets, "targets", N, "N");
    checkSize(dloss, "dloss", N, "N");
    this.addon.cuda_crossEntropyBackward(this.p(dlogits, "dlogits"), this.p(dloss, "dloss"), this.p(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void {
    const [N, C] = rowsCols(inp);
    const M = idx.size;
    checkSize(out, "out", M * C, "M*C");
    this.addon.cuda_gatherRows(this.p(out, "out"), this.p(inp, "inp"), this.i(idx, "idx"), M, N, C);
  }
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions): void {
    const n = param.size;
    for (const [t, nm] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) checkSize(t, nm, n, "param.size");
    checkInt(o.step, "step");
    this.addon.cuda_adamw(this.p(param, "param"), this.p(grad, "grad"), this.p(m, "m"), this.p(v, "v"), n, checkFinite(o.lr, "lr"), checkFinite(o.beta1, "beta1"), checkFinite(o.beta2, "beta2"), checkFinite(o.eps, "eps"), checkFinite(o.weightDecay, "weightDecay"), o.step);
  }

  // ---- fused kernels ------------------------------------------------------------------
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void {
    const [N, V] = rowsCols(logits);
    for (const [t, nm] of [[logprob, "logprob"], [entropy, "entropy"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.addon.cuda_logprobFromLogits(this.p(logprob, "logprob"), this.p(entropy, "entropy"), this.p(logits, "logits"), this.i(targets, "targets"), N, V, temperature);
  }
  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): void {
    const [B, V] = rowsCols(logits);
    checkSize(ids, "ids", B, "B");
    if (!(seeds instanceof Uint32Array) || seeds.length !== B) throw new RangeError(`sample: seeds must be a Uint32Array of length B=${B}`);
    checkSampleOptions(o);
    this.addon.cuda_sample(this.i(ids, "ids"), this.p(logits, "logits"), seeds, B, V, o.temperature, o.topK, o.topP, o.minP, o.greedy ?? false);
  }
  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void {
    const [N, H] = rowsCols(hidden);
    const [V, WH] = rowsCols(weight);
    if (WH !== H) throw new RangeError(`linearLogprobForward: weight (${V}, ${WH}) does not match hidden size ${H}`);
    for (const [t, nm] of [[logprob, "logprob"], [entropy, "entropy"], [lse, "lse"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.addon.cuda_linearLogprobForward(this.p(logprob, "logprob"), this.p(entropy, "entropy"), this.p(lse, "lse"), this.p(hidden, "hidden"), this.p(weight, "weight"), this.i(targets, "targets"), N, H, V, temperature);
  }
  linearLogprobBackward(dhidden: Tensor, dweight: Tensor, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void {
    const [N, H] = rowsCols(hidden);
    const [V, WH] = rowsCols(weight);
    if (WH !== H) throw new RangeError(`linearLogprobBackward: weight (${V}, ${WH}) does not match hidden size ${H}`);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    checkSize(dweight, "dweight", V * H, "V*H");
    for (const [t, nm] of [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [lse, "lse"], [entropy, "entropy"], [targets, "targets"]] as const) checkSize(t, nm, N, "N");
    if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
    this.addon.cuda_linearLogprobBackward(this.p(dhidden, "dhidden"), this.p(dweight, "dweight"), this.p(dlogprob, "dlogprob"), this.p(dentropy, "dentropy"), this.p(hidden, "hidden"), this.p(weight, "weight"), this.i(targets, "targets"), this.p(lse, "lse"), this.p(entropy, "entropy"), N, H, V, temperature);
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
    this.addon.cuda_grpoLoss(
      this.p(dlogprob, "dlogprob"), this.p(dentropy, "dentropy"), this.p(stats, "stats"), this.p(logprob, "logprob"), this.p(oldLogprob, "oldLogprob"),
      this.pOpt(refLogprob, "refLogprob", N, "B*T"), this.pOpt(rolloutLogprob, "rolloutLogprob", N, "B*T"), this.pOpt(entropy, "entropy", N, "B*T"),
      this.p(advantages, "advantages"), this.p(mask, "mask"), o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap,
      AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
    );
  }
}
