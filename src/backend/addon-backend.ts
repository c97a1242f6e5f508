// Validation and dispatch shared by the backends that call the C++ addon: cpu (host typed
// arrays) and cuda (device pointers). Both check a call the same way and pass the same
// arguments in the same order; only the handle of a tensor differs.
import type { Backend } from "./backend.js";
import { linearGrpoLossComposed } from "./linear-grpo-composed.js";
import { linearLogprobComposed } from "./linear-logprob-composed.js";
import { linearSequenceComposed } from "./linear-sequence-composed.js";
import {
  weightDtypeCode,
  type AdamWOptions,
  type GrpoLossOptions,
  type LinearGrpoLossOptions,
  type MatmulOptions,
  type SampleOptions,
  type SegmentLossGrad,
  type Tensor,
} from "./backend.js";
import {
  AGG_CODE,
  KL_CODE,
  attentionDims,
  checkFinite,
  checkInt,
  checkSize,
  grpoLossDims,
  linearGrpoLossDims,
  linearLogprobDims,
  linearSequenceLossDims,
  logprobFromLogitsDims,
  matmulDims,
  rmsnormDims,
  ropeDims,
  rowsCols,
  sampleDims,
} from "./check.js";

/**
 * The addon's op functions over handles F (f32 tensors), I (i32 tensors) and W (weights: f32,
 * or bf16 for frozen weights), in C++ argument order. A W operand's dtype code follows as the
 * last argument (0 f32, 1 bf16). kl: 0 = k1, 1 = k2, 2 = k3. aggregation: 0 token-mean,
 * 1 seq-mean-token-mean, 2 seq-mean-token-sum, 3 dr-grpo.
 */
export interface AddonOps<F, I, W = F> {
  add(out: F, a: F, b: F, n: number): void;
  accumulate(dst: F, src: F, alpha: number, n: number): void;
  scale(t: F, alpha: number, n: number): void;
  sumSquares(out: F, t: F, n: number): void;

  embeddingForward(out: F, ids: I, table: W, N: number, C: number, V: number, tableDtype: number): void;
  embeddingBackward(dtable: F, dout: F, ids: I, N: number, C: number, V: number): void;
  matmul(out: F, a: F, b: W, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number, bDtype: number): void;
  biasAdd(out: F, bias: F, N: number, C: number): void;
  biasBackward(dbias: F, dout: F, N: number, C: number): void;
  rmsnormForward(out: F, rstd: F, inp: F, weight: F, N: number, C: number, eps: number): void;
  rmsnormBackward(dinp: F, dweight: F, dout: F, inp: F, weight: F, rstd: F, N: number, C: number): void;
  ropeForward(out: F, inp: F, pos: I, N: number, nh: number, hd: number, theta: number): void;
  ropeBackward(dinp: F, dout: F, pos: I, N: number, nh: number, hd: number, theta: number): void;
  attentionForward(out: F, lse: F, q: F, k: F, v: F, B: number, T: number, nh: number, nkv: number, hd: number): void;
  attentionBackward(dq: F, dk: F, dv: F, dout: F, q: F, k: F, v: F, out: F, lse: F, B: number, T: number, nh: number, nkv: number, hd: number): void;
  attentionDecode(out: F, q: F, kCache: F, vCache: F, pos: I, B: number, Tq: number, S: number, nh: number, nkv: number, hd: number): void;
  kvWrite(cache: F, x: F, pos: I, B: number, Tq: number, S: number, nkv: number, hd: number): void;
  swigluForward(out: F, gate: F, up: F, n: number): void;
  swigluBackward(dgate: F, dup: F, dout: F, gate: F, up: F, n: number): void;
  crossEntropyForward(loss: F, logits: F, targets: I, N: number, V: number): void;
  crossEntropyBackward(dlogits: F, dloss: F, logits: F, targets: I, N: number, V: number): void;
  gatherRows(out: F, inp: F, idx: I, M: number, N: number, C: number): void;
  adamw(param: F, grad: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;

  logprobFromLogits(logprob: F, entropy: F, logits: F, targets: I, N: number, V: number, temperature: number): void;
  sample(ids: I, logits: F, seeds: Uint32Array, B: number, V: number, temperature: number, topK: number, topP: number, minP: number, greedy: boolean): void;
  linearLogprobForward(logprob: F, entropy: F, lse: F, hidden: F, weight: W, targets: I, N: number, H: number, V: number, temperature: number, weightDtype: number): void;
  linearLogprobBackward(dhidden: F, dweight: F | null, dlogprob: F, dentropy: F, hidden: F, weight: W, targets: I, lse: F, entropy: F, N: number, H: number, V: number, temperature: number, weightDtype: number): void;
  /** The one-pass kernel (CPU only; elsewhere the composition runs). */
  linearLogprobForwardBackward?(logprob: F, entropy: F, dhidden: F, dweight: F | null, hidden: F, weight: W, targets: I, dlogprob: F, dentropy: F, N: number, H: number, V: number, temperature: number, weightDtype: number): void;
  /** The sequence loss's one-pass kernel (CPU only; elsewhere the composition runs). */
  linearSequenceLoss?(logprob: F, entropy: F, dhidden: F, dweight: F | null, hidden: F, weight: W, targets: I, segment: Int32Array, groupOf: Int32Array, lossGrad: SegmentLossGrad, S: number, N: number, H: number, V: number, temperature: number, weightDtype: number): Float64Array;
  grpoLoss(dlogprob: F, dentropy: F, stats: F, logprob: F, oldLogprob: F, refLogprob: F | null, rolloutLogprob: F | null, entropy: F | null, advantages: F, mask: F, B: number, T: number, epsLow: number, epsHigh: number, dualClip: number, beta: number, kl: number, entropyCoef: number, tisCap: number, aggregation: number, maxCompletionLength: number): void;
  linearGrpoLoss(dhidden: F, dweight: F | null, stats: F, logprob: F, entropy: F, hidden: F, weight: W, targets: I, oldLogprob: F | null, refLogprob: F | null, rolloutLogprob: F | null, advantages: F, mask: F, H: number, V: number, temperature: number, lossScale: number, B: number, T: number, epsLow: number, epsHigh: number, dualClip: number, beta: number, kl: number, entropyCoef: number, tisCap: number, aggregation: number, maxCompletionLength: number, weightDtype: number): void;
}

/** Names of the AddonOps functions (the cuda exports are the same names prefixed by cuda_). */
export const ADDON_OPS = ["add", "accumulate", "scale", "sumSquares", "embeddingForward", "embeddingBackward", "matmul", "biasAdd", "biasBackward", "rmsnormForward", "rmsnormBackward", "ropeForward", "ropeBackward", "attentionForward", "attentionBackward", "attentionDecode", "kvWrite", "swigluForward", "swigluBackward", "crossEntropyForward", "crossEntropyBackward", "gatherRows", "adamw", "logprobFromLogits", "sample", "linearLogprobForward", "linearLogprobBackward", "grpoLoss", "linearGrpoLoss"] as const;

export abstract class AddonBackend<F, I, W = F> {
  protected abstract readonly ops: AddonOps<F, I, W>;
  /** Whether the addon's linearGrpoLoss takes a frozen head (no dweight) and a bf16 weight;
   * without, those run as the two-pass composition. */
  protected readonly onePassFrozenHead: boolean = false;
  /** The f32 handle of a checked tensor of this backend. */
  protected abstract f(t: Tensor, name: string): F;
  /** The i32 handle of a checked tensor of this backend. */
  protected abstract i(t: Tensor, name: string): I;
  /** The handle of a checked weight operand of this backend: f32 or bf16. */
  protected abstract w(t: Tensor, name: string): W;

  // ---- elementwise --------------------------------------------------------------------
  add(out: Tensor, a: Tensor, b: Tensor): void {
    const n = out.size;
    checkSize(a, "a", n, "out.size");
    checkSize(b, "b", n, "out.size");
    this.ops.add(this.f(out, "out"), this.f(a, "a"), this.f(b, "b"), n);
  }
  accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
    checkSize(src, "src", dst.size, "dst.size");
    this.ops.accumulate(this.f(dst, "dst"), this.f(src, "src"), checkFinite(alpha, "alpha"), dst.size);
  }
  scale(t: Tensor, alpha: number): void {
    this.ops.scale(this.f(t, "t"), checkFinite(alpha, "alpha"), t.size);
  }
  sumSquares(out: Tensor, t: Tensor): void {
    checkSize(out, "out", 1, "1");
    this.ops.sumSquares(this.f(out, "out"), this.f(t, "t"), t.size);
  }

  // ---- decoder ops --------------------------------------------------------------------
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void {
    const [V, C] = rowsCols(table);
    const N = ids.size;
    checkSize(out, "out", N * C, "N*C");
    this.ops.embeddingForward(this.f(out, "out"), this.i(ids, "ids"), this.w(table, "table"), N, C, V, weightDtypeCode(table.dtype));
  }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): void {
    const [V, C] = rowsCols(dtable);
    const N = ids.size;
    checkSize(dout, "dout", N * C, "N*C");
    this.ops.embeddingBackward(this.f(dtable, "dtable"), this.f(dout, "dout"), this.i(ids, "ids"), N, C, V);
  }
  matmul(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions = {}): void {
    const { M, N, K, transA, transB, accumulate, alpha } = matmulDims(out, a, b, opts);
    this.ops.matmul(this.f(out, "out"), this.f(a, "a"), this.w(b, "b"), M, N, K, transA, transB, accumulate, alpha, weightDtypeCode(b.dtype));
  }
  biasAdd(out: Tensor, bias: Tensor): void {
    const [N, C] = rowsCols(out);
    checkSize(bias, "bias", C, "C");
    this.ops.biasAdd(this.f(out, "out"), this.f(bias, "bias"), N, C);
  }
  biasBackward(dbias: Tensor, dout: Tensor): void {
    const [N, C] = rowsCols(dout);
    checkSize(dbias, "dbias", C, "C");
    this.ops.biasBackward(this.f(dbias, "dbias"), this.f(dout, "dout"), N, C);
  }
  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormForward");
    checkSize(out, "out", inp.size, "inp.size");
    checkSize(rstd, "rstd", N, "N");
    this.ops.rmsnormForward(this.f(out, "out"), this.f(rstd, "rstd"), this.f(inp, "inp"), this.f(weight, "weight"), N, C, checkFinite(eps, "eps"));
  }
  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormBackward");
    checkSize(dinp, "dinp", inp.size, "inp.size");
    checkSize(dout, "dout", inp.size, "inp.size");
    checkSize(dweight, "dweight", C, "C");
    checkSize(rstd, "rstd", N, "N");
    this.ops.rmsnormBackward(this.f(dinp, "dinp"), this.f(dweight, "dweight"), this.f(dout, "dout"), this.f(inp, "inp"), this.f(weight, "weight"), this.f(rstd, "rstd"), N, C);
  }
  ropeForward(out: Tensor, inp: Tensor, pos: Tensor, theta: number): void {
    const [N, nh, hd] = ropeDims(inp, pos);
    checkSize(out, "out", inp.size, "inp.size");
    this.ops.ropeForward(this.f(out, "out"), this.f(inp, "inp"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
  }
  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void {
    const [N, nh, hd] = ropeDims(dout, pos);
    checkSize(dinp, "dinp", dout.size, "dout.size");
    this.ops.ropeBackward(this.f(dinp, "dinp"), this.f(dout, "dout"), this.i(pos, "pos"), N, nh, hd, checkFinite(theta, "theta"));
  }
  attentionForward(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor): void {
    const [B, T, nh, nkv, hd] = attentionDims(q, k);
    checkSize(v, "v", k.size, "k.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    this.ops.attentionForward(this.f(out, "out"), this.f(lse, "lse"), this.f(q, "q"), this.f(k, "k"), this.f(v, "v"), B, T, nh, nkv, hd);
  }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor): void {
    const [B, T, nh, nkv, hd] = attentionDims(q, k);
    for (const [t, n] of [[dq, "dq"], [dout, "dout"], [out, "out"]] as const) checkSize(t, n, q.size, "q.size");
    for (const [t, n] of [[dk, "dk"], [dv, "dv"], [v, "v"]] as const) checkSize(t, n, k.size, "k.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    this.ops.attentionBackward(this.f(dq, "dq"), this.f(dk, "dk"), this.f(dv, "dv"), this.f(dout, "dout"), this.f(q, "q"), this.f(k, "k"), this.f(v, "v"), this.f(out, "out"), this.f(lse, "lse"), B, T, nh, nkv, hd);
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
    this.ops.attentionDecode(this.f(out, "out"), this.f(q, "q"), this.f(kCache, "kCache"), this.f(vCache, "vCache"), this.i(pos, "pos"), B, Tq, S, nh, nkv, hd);
  }
  kvWrite(cache: Tensor, x: Tensor, pos: Tensor): void {
    if (cache.shape.length !== 4 || x.shape.length !== 4) throw new RangeError("kvWrite: cache (B, S, nkv, hd) and x (B, Tq, nkv, hd) must be 4-D");
    const [B, S, nkv, hd] = cache.shape;
    const Tq = x.shape[1];
    if (x.shape[0] !== B || x.shape[2] !== nkv || x.shape[3] !== hd) throw new RangeError(`kvWrite: x shape [${x.shape}] does not match cache [${cache.shape}]`);
    checkSize(pos, "pos", B, "B");
    this.ops.kvWrite(this.f(cache, "cache"), this.f(x, "x"), this.i(pos, "pos"), B, Tq, S, nkv, hd);
  }
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
    checkSize(gate, "gate", out.size, "out.size");
    checkSize(up, "up", out.size, "out.size");
    this.ops.swigluForward(this.f(out, "out"), this.f(gate, "gate"), this.f(up, "up"), out.size);
  }
  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void {
    const n = dout.size;
    for (const [t, nm] of [[dgate, "dgate"], [dup, "dup"], [gate, "gate"], [up, "up"]] as const) checkSize(t, nm, n, "dout.size");
    this.ops.swigluBackward(this.f(dgate, "dgate"), this.f(dup, "dup"), this.f(dout, "dout"), this.f(gate, "gate"), this.f(up, "up"), n);
  }
  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(targets, "targets", N, "N");
    checkSize(loss, "loss", N, "N");
    this.ops.crossEntropyForward(this.f(loss, "loss"), this.f(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(dlogits, "dlogits", N * V, "N*V");
    checkSize(targets, "targets", N, "N");
    checkSize(dloss, "dloss", N, "N");
    this.ops.crossEntropyBackward(this.f(dlogits, "dlogits"), this.f(dloss, "dloss"), this.f(logits, "logits"), this.i(targets, "targets"), N, V);
  }
  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void {
    const [N, C] = rowsCols(inp);
    const M = idx.size;
    checkSize(out, "out", M * C, "M*C");
    this.ops.gatherRows(this.f(out, "out"), this.f(inp, "inp"), this.i(idx, "idx"), M, N, C);
  }
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions): void {
    const n = param.size;
    for (const [t, nm] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) checkSize(t, nm, n, "param.size");
    checkInt(o.step, "step");
    this.ops.adamw(this.f(param, "param"), this.f(grad, "grad"), this.f(m, "m"), this.f(v, "v"), n, checkFinite(o.lr, "lr"), checkFinite(o.beta1, "beta1"), checkFinite(o.beta2, "beta2"), checkFinite(o.eps, "eps"), checkFinite(o.weightDecay, "weightDecay"), o.step);
  }

  // ---- fused kernels ------------------------------------------------------------------
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void {
    const [N, V] = logprobFromLogitsDims(logprob, entropy, logits, targets, temperature);
    this.ops.logprobFromLogits(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(logits, "logits"), this.i(targets, "targets"), N, V, temperature);
  }

  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): void {
    const [B, V] = sampleDims(ids, logits, seeds, o);
    this.ops.sample(this.i(ids, "ids"), this.f(logits, "logits"), seeds, B, V, o.temperature, o.topK, o.topP, o.minP, o.greedy ?? false);
  }

  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobForward", hidden, weight, [[logprob, "logprob"], [entropy, "entropy"], [lse, "lse"], [targets, "targets"]], temperature);
    this.ops.linearLogprobForward(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(lse, "lse"), this.f(hidden, "hidden"), this.w(weight, "weight"), this.i(targets, "targets"), N, H, V, temperature, weightDtypeCode(weight.dtype));
  }

  linearLogprobBackward(dhidden: Tensor, dweight: Tensor | null, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobBackward", hidden, weight, [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [lse, "lse"], [entropy, "entropy"], [targets, "targets"]], temperature);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    if (dweight) checkSize(dweight, "dweight", V * H, "V*H");
    this.ops.linearLogprobBackward(this.f(dhidden, "dhidden"), dweight ? this.f(dweight, "dweight") : null, this.f(dlogprob, "dlogprob"), this.f(dentropy, "dentropy"), this.f(hidden, "hidden"), this.w(weight, "weight"), this.i(targets, "targets"), this.f(lse, "lse"), this.f(entropy, "entropy"), N, H, V, temperature, weightDtypeCode(weight.dtype));
  }

  linearLogprobForwardBackward(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, dlogprob: Tensor, dentropy: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobForwardBackward", hidden, weight, [[logprob, "logprob"], [entropy, "entropy"], [dlogprob, "dlogprob"], [dentropy, "dentropy"], [targets, "targets"]], temperature);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    if (dweight) checkSize(dweight, "dweight", V * H, "V*H");
    if (!this.ops.linearLogprobForwardBackward)
      return linearLogprobComposed(this as unknown as Backend, logprob, entropy, dhidden, dweight, hidden, weight, targets, dlogprob, dentropy, temperature);
    this.ops.linearLogprobForwardBackward(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(dhidden, "dhidden"), dweight ? this.f(dweight, "dweight") : null, this.f(hidden, "hidden"), this.w(weight, "weight"), this.i(targets, "targets"), this.f(dlogprob, "dlogprob"), this.f(dentropy, "dentropy"), N, H, V, temperature, weightDtypeCode(weight.dtype));
  }

  async linearSequenceLoss(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, segment: Int32Array, groupOf: Int32Array, lossGrad: SegmentLossGrad, temperature: number): Promise<Float64Array> {
    const [N, H, V] = linearSequenceLossDims(logprob, entropy, dhidden, dweight, hidden, weight, targets, segment, groupOf, temperature);
    if (!this.ops.linearSequenceLoss)
      return linearSequenceComposed(this as unknown as Backend, logprob, entropy, dhidden, dweight, hidden, weight, targets, segment, groupOf, lossGrad, temperature);
    return this.ops.linearSequenceLoss(this.f(logprob, "logprob"), this.f(entropy, "entropy"), this.f(dhidden, "dhidden"), dweight ? this.f(dweight, "dweight") : null, this.f(hidden, "hidden"), this.w(weight, "weight"), this.i(targets, "targets"), segment, groupOf, lossGrad, groupOf.length, N, H, V, temperature, weightDtypeCode(weight.dtype));
  }

  grpoLoss(dlogprob: Tensor, dentropy: Tensor, stats: Tensor, logprob: Tensor, oldLogprob: Tensor, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, entropy: Tensor | null, advantages: Tensor, mask: Tensor, o: GrpoLossOptions): void {
    grpoLossDims(dlogprob, dentropy, stats, logprob, oldLogprob, refLogprob, rolloutLogprob, entropy, advantages, mask, o);
    const opt = (t: Tensor | null, name: string) => (t === null ? null : this.f(t, name));
    this.ops.grpoLoss(
      this.f(dlogprob, "dlogprob"), this.f(dentropy, "dentropy"), this.f(stats, "stats"), this.f(logprob, "logprob"), this.f(oldLogprob, "oldLogprob"),
      opt(refLogprob, "refLogprob"), opt(rolloutLogprob, "rolloutLogprob"), opt(entropy, "entropy"),
      this.f(advantages, "advantages"), this.f(mask, "mask"), o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap,
      AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
    );
  }

  linearGrpoLoss(dhidden: Tensor, dweight: Tensor | null, stats: Tensor, logprob: Tensor, entropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, oldLogprob: Tensor | null, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, advantages: Tensor, mask: Tensor, temperature: number, o: LinearGrpoLossOptions): void {
    const [, H, V] = linearGrpoLossDims(dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, oldLogprob, refLogprob, rolloutLogprob, advantages, mask, temperature, o);
    if (!this.onePassFrozenHead && (dweight === null || weight.dtype === "bf16"))
      // Every concrete addon backend is a Backend (this base class holds only the ops).
      return linearGrpoLossComposed(this as unknown as Backend, dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, oldLogprob, refLogprob, rolloutLogprob, advantages, mask, temperature, o);
    const opt = (t: Tensor | null, name: string) => (t === null ? null : this.f(t, name));
    this.ops.linearGrpoLoss(
      this.f(dhidden, "dhidden"), dweight ? this.f(dweight, "dweight") : null, this.f(stats, "stats"), this.f(logprob, "logprob"), this.f(entropy, "entropy"),
      this.f(hidden, "hidden"), this.w(weight, "weight"), this.i(targets, "targets"),
      opt(oldLogprob, "oldLogprob"), opt(refLogprob, "refLogprob"), opt(rolloutLogprob, "rolloutLogprob"), this.f(advantages, "advantages"), this.f(mask, "mask"),
      H, V, temperature, o.lossScale ?? 1,
      o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap, AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
      weightDtypeCode(weight.dtype),
    );
  }

}
