// WebGPU backend: tensors are GPUBuffers, ops dispatch the WGSL kernels in kernels/ (same
// names as native/cpu) through Dawn. Runs anywhere Dawn finds an adapter, including Mesa's
// lavapipe on a CPU-only machine. How work reaches the GPU (one pending command encoder, a
// uniform ring, binding windows that fit the device's limit) is dispatch.ts; this file holds
// the ops, which only say what to dispatch.
//
// - Kernels cannot throw: ids / targets / positions out of range give zero rows, NaN, or
//   skipped writes (documented per kernel) where the CPU backend throws.
// - On lavapipe a workgroup runs on one CPU thread and each barrier switches coroutines per
//   8-wide subgroup, so row reductions use 64-wide workgroups with few barriers. The first
//   dispatch of each pipeline JIT-compiles it (seconds); Mesa caches the result on disk.
// - No float atomics in WebGPU: reductions (sumSquares, dbias, dweight of RMSNorm, embedding
//   backward, attention dk/dv under GQA) are written race-free: two-pass partial sums, or one
//   invocation owning each output.
// - bf16 tensors (frozen weights) are packed two per 32-bit word and widened to f32 exactly where
//   the kernels load them (kernels/lib/weight.wgsl): half the memory, the same values as the cpu
//   and cuda backends, and no optional feature needed (f16 storage would round differently and
//   need shader-f16). Memory ops on them work in whole words (even offsets and counts).
import {
  numel,
  type AdamWOptions,
  type Backend,
  type DType,
  type GrpoLossOptions,
  type LinearGrpoLossOptions,
  type MatmulOptions,
  type SampleOptions,
  type SegmentLossGrad,
  type Tensor,
} from "../backend.js";
import {
  AGG_CODE,
  KL_CODE,
  attentionDims,
  checkFinite,
  checkInt,
  checkSize,
  checkTensor,
  checkWeight,
  grpoLossDims,
  uploadDtype,
  linearGrpoLossDims,
  linearLogprobDims,
  linearSequenceLossDims,
  logprobFromLogitsDims,
  matmulDims,
  rmsnormDims,
  ropeDims,
  rowsCols,
  sampleDims,
} from "../check.js";
import { linearGrpoLossComposed } from "../linear-grpo-composed.js";
import { linearLogprobComposed } from "../linear-logprob-composed.js";
import { linearSequenceComposed } from "../linear-sequence-composed.js";
import { Dispatcher, STORAGE, type Span } from "./dispatch.js";
import { createContext, describeAdapter, type AdapterDescription, type GpuContext } from "./device.js";
import { GpuTensor, bufferBytes } from "./tensor.js";
import { bf16BitsToF32, f32ToBf16Bits } from "../bf16.js";

/** A weight operand's window: f32 elements, or bf16 elements packed two per word. */
type WeightSpan = Span & { bf16: boolean };

export interface WebGpuOptions {
  /** Largest storage binding to use, in bytes (default: the device limit). Tests lower it to exercise splitting. */
  maxBindingBytes?: number;
  /** Positions covered by the double-precision RoPE cos/sin table (default 32768). */
  ropeTablePositions?: number;
}

export interface WebGpuDescription {
  backend: "webgpu";
  adapter: AdapterDescription;
  f16: boolean;
  subgroups: boolean;
  maxBindingBytes: number;
}

export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  /** Submission, uniform ring, binding windows: the ops below only say what to dispatch. */
  private readonly gpu: Dispatcher;
  private readonly ropePositions: number;

  private constructor(
    /** Holds Dawn's GPU object for the device's whole life (see device.ts). */
    private readonly ctx: GpuContext,
    opts: WebGpuOptions,
  ) {
    this.gpu = new Dispatcher(ctx.device, opts.maxBindingBytes);
    this.ropePositions = opts.ropeTablePositions ?? 32768;
  }

  /** Creates the backend on the default adapter; throws an Error saying why when there is none. */
  static async create(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await createContext(), opts);
  }

  describe(): WebGpuDescription {
    return { backend: "webgpu", adapter: describeAdapter(this.ctx.adapter), f16: this.ctx.f16, subgroups: this.ctx.subgroups, maxBindingBytes: this.gpu.maxBinding };
  }

  private span(t: Tensor, name: string, dtype: DType = "f32"): Span {
    const g = checkTensor(t, name, this, dtype) as GpuTensor;
    return { buffer: g.buffer, off: 0, len: g.size };
  }

  /** A weight operand: f32, or bf16 packed two per word (off and len count elements). */
  private weightSpan(t: Tensor, name: string): WeightSpan {
    const g = checkWeight(t, name, this) as GpuTensor;
    return { buffer: g.buffer, off: 0, len: g.size, bf16: g.dtype === "bf16" };
  }

  /**
   * A binding of weight elements [start, start + count) and the element offset of start inside
   * it (bf16 windows start at the aligned word at or before it; f32 windows as gpu.bind).
   */
  private bindWeight(w: WeightSpan, start: number, count: number, what: string): [GPUBufferBinding, number] {
    if (!w.bf16) return [this.gpu.bind(w, start, count, what), 0];
    const e0 = w.off + start;
    const word0 = Math.floor(e0 / 2 / 64) * 64; // 256-byte aligned
    const res = e0 - 2 * word0;
    const words = Math.max(1, Math.ceil((res + count) / 2));
    if (words * 4 > this.gpu.maxBinding) throw new RangeError(`webgpu: ${what} needs a ${words * 4}-byte storage binding, over this device's limit of ${this.gpu.maxBinding} bytes`);
    return [{ buffer: w.buffer, offset: word0 * 4, size: words * 4 }, res];
  }

  /** A bf16 tensor's 32-bit words, for the memory ops (2 elements per word). */
  private words(t: Tensor, name: string): Span {
    const g = checkTensor(t, name, this, "bf16") as GpuTensor;
    return { buffer: g.buffer, off: 0, len: Math.ceil(g.size / 2) };
  }

  /** Element offset and count of a bf16 range as words; throws unless whole words (or the tail). */
  private wordRange(offset: number, count: number, size: number, op: string): [number, number] {
    if (offset % 2 !== 0 || (count % 2 !== 0 && offset + count !== size))
      throw new RangeError(`${op}: a bf16 range must start at an even element and cover whole pairs (or end at the tensor's end), got ${count} at ${offset}`);
    return [offset / 2, Math.ceil(count / 2)];
  }

  /** Called by GpuTensor.dispose. */
  releaseBuffer(buffer: GPUBuffer): void {
    this.gpu.release(buffer);
  }

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype: DType = "f32"): GpuTensor {
    for (const d of shape) checkInt(d, "shape dimension", 0);
    const n = numel(shape);
    const buffer = this.gpu.device.createBuffer({ size: bufferBytes(dtype === "bf16" ? Math.ceil(n / 2) : n), usage: STORAGE() }); // WebGPU zero-fills
    return new GpuTensor(this, [...shape], dtype, buffer);
  }

  upload(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): GpuTensor {
    const kind = uploadDtype(data, dtype);
    for (const d of shape) checkInt(d, "shape dimension", 0);
    const n = numel(shape);
    if (data.length !== n) throw new RangeError(`data has ${data.length} elements, shape [${shape.join(", ")}] needs ${n}`);
    const host = kind === "bf16" ? f32ToBf16Bits(data as Float32Array) : data;
    const buffer = this.gpu.device.createBuffer({ size: bufferBytes(kind === "bf16" ? Math.ceil(n / 2) : n), usage: STORAGE(), mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(host.buffer, host.byteOffset, host.byteLength));
    buffer.unmap();
    return new GpuTensor(this, [...shape], kind, buffer);
  }

  view(t: Tensor, shape: readonly number[]): GpuTensor {
    const g = checkTensor(t, "t", this, t.dtype) as GpuTensor;
    for (const d of shape) checkInt(d, "shape dimension", 0);
    if (numel(shape) !== g.size) throw new RangeError(`view: shape [${shape.join(", ")}] has ${numel(shape)} elements, tensor has ${g.size}`);
    return new GpuTensor(this, [...shape], g.dtype, g.buffer, g.base ?? g);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    if (t.dtype === "bf16") {
      const w = this.words(t, "t");
      const bits = new Uint16Array((await this.readWords(w)).buffer, 0, t.size);
      return bf16BitsToF32(bits);
    }
    const words = await this.readWords(this.span(t, "t", t.dtype));
    return t.dtype === "i32" ? new Int32Array(words.buffer) : new Float32Array(words.buffer);
  }

  /** The span's words, copied to the host. */
  private async readWords(s: Span): Promise<Uint32Array> {
    const out = new Uint32Array(s.len);
    if (s.len === 0) {
      this.gpu.flush();
      this.gpu.checkErrors();
      return out;
    }
    const staging = this.gpu.device.createBuffer({ size: s.len * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.gpu.enc().copyBufferToBuffer(s.buffer, 0, staging, 0, s.len * 4);
    this.gpu.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
      new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange()));
      staging.unmap();
    } finally {
      staging.destroy();
    }
    this.gpu.checkErrors();
    return out;
  }

  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const s = t.dtype === "bf16" ? this.words(t, "t") : this.span(t, "t", t.dtype);
    if ((t.dtype !== "i32") !== data instanceof Float32Array) throw new TypeError(`write: data must be ${t.dtype !== "i32" ? "a Float32Array" : "an Int32Array"} for a ${t.dtype} tensor`);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > t.size) throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in ${t.size}`);
    if (data.length === 0) return;
    let host: ArrayBufferView = data;
    let at = offset;
    if (t.dtype === "bf16") {
      const [w0, nw] = this.wordRange(offset, data.length, t.size, "write");
      const bits = new Uint16Array(2 * nw);
      bits.set(f32ToBf16Bits(data as Float32Array));
      host = bits;
      at = w0;
    }
    this.gpu.flush(); // writeBuffer is ordered against submits, not against our unsubmitted encoder
    this.gpu.device.queue.writeBuffer(s.buffer, at * 4, host.buffer, host.byteOffset, host.byteLength);
  }

  copy(dst: Tensor, src: Tensor, dstOffset = 0, srcOffset = 0, count?: number): void {
    if (dst.dtype === "bf16") {
      checkTensor(src, "src", this, "bf16");
      const n = count ?? Math.min(dst.size - dstOffset, src.size - srcOffset);
      if (dstOffset < 0 || srcOffset < 0 || n < 0 || dstOffset + n > dst.size || srcOffset + n > src.size)
        throw new RangeError(`copy: range out of bounds (dst ${dstOffset}+${n} of ${dst.size}, src ${srcOffset}+${n} of ${src.size})`);
      const [d0, nw] = this.wordRange(dstOffset, n, dst.size, "copy");
      const [s0] = this.wordRange(srcOffset, n, src.size, "copy");
      return this.copyWords(this.words(dst, "dst"), this.words(src, "src"), d0, s0, nw);
    }
    const d = this.span(dst, "dst", dst.dtype);
    const s = this.span(src, "src", dst.dtype);
    const n = count ?? Math.min(d.len - dstOffset, s.len - srcOffset);
    if (dstOffset < 0 || srcOffset < 0 || n < 0 || dstOffset + n > d.len || srcOffset + n > s.len)
      throw new RangeError(`copy: range out of bounds (dst ${dstOffset}+${n} of ${d.len}, src ${srcOffset}+${n} of ${s.len})`);
    this.copyWords(d, s, dstOffset, srcOffset, n);
  }

  /** Copies n 32-bit words between spans (overlap-safe). */
  private copyWords(d: Span, s: Span, dstOffset: number, srcOffset: number, n: number): void {
    if (n === 0) return;
    const enc = this.gpu.enc();
    if (d.buffer === s.buffer && Math.abs(dstOffset - srcOffset) < n) {
      // Overlapping ranges of one buffer: WebGPU forbids that copy, so bounce through scratch.
      const tmp = this.gpu.scratch("copy", n);
      enc.copyBufferToBuffer(s.buffer, srcOffset * 4, tmp.buffer, 0, n * 4);
      enc.copyBufferToBuffer(tmp.buffer, 0, d.buffer, dstOffset * 4, n * 4);
    } else {
      enc.copyBufferToBuffer(s.buffer, srcOffset * 4, d.buffer, dstOffset * 4, n * 4);
    }
  }

  fill(t: Tensor, value: number): void {
    const s = t.dtype === "bf16" ? this.words(t, "t") : this.span(t, "t", t.dtype);
    let bits: number;
    if (t.dtype === "i32") bits = checkInt(value, "value", -(2 ** 31)) | 0;
    else if (t.dtype === "bf16") bits = ((f32ToBf16Bits(Float32Array.of(value))[0] * 0x10001) >>> 0);
    else bits = new Uint32Array(Float32Array.of(value).buffer)[0];
    for (const [start, n] of this.gpu.chunks(s.len)) this.gpu.run("elementwise", "fill", "uu", [n, bits], [this.gpu.bind(s, start, n, "t")], this.gpu.grid(Math.ceil(n / 256)));
  }

  async sync(): Promise<void> {
    this.gpu.flush();
    await this.gpu.device.queue.onSubmittedWorkDone();
    this.gpu.checkErrors();
  }

  destroy(): void {
    this.gpu.destroy();
  }

  // ---- elementwise --------------------------------------------------------------------
  add(out: Tensor, a: Tensor, b: Tensor): void {
    const o = this.span(out, "out");
    const sa = this.span(a, "a");
    const sb = this.span(b, "b");
    checkSize(a, "a", o.len, "out.size");
    checkSize(b, "b", o.len, "out.size");
    // out may alias a or b: a written buffer cannot also be bound for reading, so use the in-place forms.
    if (o.buffer === sa.buffer && o.buffer === sb.buffer) return this.scale(out, 2);
    if (o.buffer === sa.buffer) return this.accumulate(out, b, 1);
    if (o.buffer === sb.buffer) return this.accumulate(out, a, 1);
    for (const [s, n] of this.gpu.chunks(o.len))
      this.gpu.run("elementwise", "add", "u", [n], [this.gpu.bind(o, s, n, "out"), this.gpu.bind(sa, s, n, "a"), this.gpu.bind(sb, s, n, "b")], this.gpu.grid(Math.ceil(n / 256)));
  }

  accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
    const d = this.span(dst, "dst");
    const s = this.span(src, "src");
    checkSize(src, "src", d.len, "dst.size");
    checkFinite(alpha, "alpha");
    for (const [st, n] of this.gpu.chunks(d.len))
      this.gpu.run("elementwise", "accumulate", "uf", [n, alpha], [this.gpu.bind(d, st, n, "dst"), this.gpu.bind(s, st, n, "src")], this.gpu.grid(Math.ceil(n / 256)));
  }

  scale(t: Tensor, alpha: number): void {
    const s = this.span(t, "t");
    checkFinite(alpha, "alpha");
    for (const [st, n] of this.gpu.chunks(s.len)) this.gpu.run("elementwise", "scale", "uf", [n, alpha], [this.gpu.bind(s, st, n, "t")], this.gpu.grid(Math.ceil(n / 256)));
  }

  sumSquares(out: Tensor, t: Tensor): void {
    const o = this.span(out, "out");
    checkSize(out, "out", 1, "1");
    const s = this.span(t, "t");
    const partial = this.gpu.scratch("sumsq", 1024);
    for (const [st, n] of this.gpu.chunks(s.len)) {
      const groups = Math.min(1024, Math.ceil(n / 256));
      this.gpu.run("elementwise", "sum_squares_partial", "uu", [n, groups], [this.gpu.whole(partial, "partial"), this.gpu.bind(s, st, n, "t")], [groups]);
      this.gpu.run("elementwise", "sum_squares_finish", "uu", [n, groups], [this.gpu.whole(o, "out"), this.gpu.whole(partial, "partial")], [1]);
    }
  }

  // ---- decoder ops --------------------------------------------------------------------
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void {
    const [V, C] = rowsCols(table);
    const N = ids.size;
    checkSize(out, "out", N * C, "N*C");
    const o = this.span(out, "out");
    const si = this.span(ids, "ids", "i32");
    const st = this.weightSpan(table, "table");
    let first = 1;
    for (const [v0, Vc] of this.gpu.rowChunks(V, C, "table", false)) {
      const [tb, tOff] = this.bindWeight(st, v0 * C, Vc * C, "table");
      this.gpu.run("embedding", "embedding_forward", "uuuuuuuu", [N, C, V, v0, Vc, first, tOff, st.bf16 ? 1 : 0],
        [this.gpu.whole(o, "out"), this.gpu.whole(si, "ids"), tb], this.gpu.grid(Math.ceil((N * C) / 256)));
      first = 0;
    }
  }

  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Tensor): void {
    const [V, C] = rowsCols(dtable);
    const N = ids.size;
    checkSize(dout, "dout", N * C, "N*C");
    const sd = this.span(dtable, "dtable");
    const so = this.span(dout, "dout");
    const si = this.span(ids, "ids", "i32");
    if (N === 0) return;
    const links = this.gpu.scratch("embedding_links", 2 * N);
    this.gpu.run("embedding", "embedding_links", "uuuuuu", [N, C, V, 0, V, 0], [this.gpu.whole(links, "links"), this.gpu.whole(si, "ids")], this.gpu.grid(Math.ceil(N / 256)));
    for (const [v0, Vc] of this.gpu.rowChunks(V, C, "dtable", false)) {
      this.gpu.run("embedding", "embedding_backward", "uuuuuu", [N, C, V, v0, Vc, 0],
        [this.gpu.bind(sd, v0 * C, Vc * C, "dtable"), this.gpu.whole(so, "dout"), this.gpu.whole(si, "ids"), this.gpu.whole(links, "links")], this.gpu.grid(Math.ceil((N * C) / 256)));
    }
  }

  matmul(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions = {}): void {
    const { M, N, K, transA, transB, accumulate, alpha } = matmulDims(out, a, b, opts);
    this.mm(this.span(out, "out"), this.span(a, "a"), this.weightSpan(b, "b"), M, N, K, transA, transB, accumulate, alpha);
  }

  /**
   * out (M, N) (+)= alpha * op(a) @ op(b) on spans, split into blocks whose windows fit one
   * binding. A K-split turns later blocks into accumulations.
   */
  private mm(out: Span, a: Span, b: WeightSpan, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void {
    if (M === 0 || N === 0) return;
    if (K === 0) {
      if (!accumulate) for (const [s, n] of this.gpu.chunks(M * N)) this.gpu.run("elementwise", "fill", "uu", [n, 0], [this.gpu.bind(out, s, n, "out")], this.gpu.grid(Math.ceil(n / 256)));
      return;
    }
    const L = this.gpu.maxElems;
    // At most 65535 workgroups of 64 rows / columns per dispatch dimension.
    let mb = Math.min(M, 65535 * 64), nb = Math.min(N, 65535 * 64), kb = K;
    const shrink = (x: number): number => (x <= 64 ? x : Math.max(64, Math.floor(x / 2 / 64) * 64));
    for (;;) {
      const wOut = (mb - 1) * N + nb;
      const wA = transA ? (kb - 1) * M + mb : (mb - 1) * K + kb;
      const wB = transB ? (nb - 1) * K + kb : (kb - 1) * N + nb;
      let before = mb * nb * kb;
      if (wOut > L) mb = shrink(mb);
      else if (wA > L) transA ? (kb = shrink(kb)) : (mb = shrink(mb));
      else if (wB > L) transB ? (nb = shrink(nb)) : (kb = shrink(kb));
      else break;
      if (mb * nb * kb === before) {
        // The row dimension is down to 64: shrink the column extent of that operand instead.
        before = mb * nb * kb;
        if (wOut > L) nb = shrink(nb);
        else if (wA > L) transA ? (mb = shrink(mb)) : (kb = shrink(kb));
        else transB ? (kb = shrink(kb)) : (nb = shrink(nb));
        if (mb * nb * kb === before) throw new RangeError(`webgpu: matmul (${M}, ${N}, ${K}) cannot be split to fit ${this.gpu.maxBinding}-byte bindings`);
      }
    }
    for (let m0 = 0; m0 < M; m0 += mb) {
      const mc = Math.min(mb, M - m0);
      for (let n0 = 0; n0 < N; n0 += nb) {
        const nc = Math.min(nb, N - n0);
        for (let k0 = 0; k0 < K; k0 += kb) {
          const kc = Math.min(kb, K - k0);
          const bo = this.gpu.bind(out, m0 * N + n0, (mc - 1) * N + nc, "matmul out");
          const ba = transA ? this.gpu.bind(a, k0 * M + m0, (kc - 1) * M + mc, "matmul a") : this.gpu.bind(a, m0 * K + k0, (mc - 1) * K + kc, "matmul a");
          const [bb, bOff] = transB ? this.bindWeight(b, n0 * K + k0, (nc - 1) * K + kc, "matmul b") : this.bindWeight(b, k0 * N + n0, (kc - 1) * N + nc, "matmul b");
          const params = [mc, nc, kc, transA ? M : K, transB ? K : N, N, transA ? 1 : 0, transB ? 1 : 0, accumulate || k0 > 0 ? 1 : 0, alpha, bOff, b.bf16 ? 1 : 0];
          if (mc <= 32) {
            // Few rows (decode): one invocation per column for all rows, instead of mostly-empty 64x64 tiles.
            const MR = mc <= 4 ? 4 : mc <= 8 ? 8 : mc <= 16 ? 16 : 32;
            this.gpu.run("matmul_skinny", "main", "uuuuuuuuufuu", params, [bo, ba, bb], [Math.ceil(nc / 64)], { MR });
          } else {
            this.gpu.run("matmul", "main", "uuuuuuuuufuu", params, [bo, ba, bb], [Math.ceil(nc / 64), Math.ceil(mc / 64)]);
          }
        }
      }
    }
  }

  biasAdd(out: Tensor, bias: Tensor): void {
    const [N, C] = rowsCols(out);
    checkSize(bias, "bias", C, "C");
    const o = this.span(out, "out");
    const sb = this.span(bias, "bias");
    for (const [r0, rows] of this.gpu.rowChunks(N, C, "out", false))
      this.gpu.run("bias", "bias_add", "uu", [rows, C], [this.gpu.bind(o, r0 * C, rows * C, "out"), this.gpu.whole(sb, "bias")], this.gpu.grid(Math.ceil((rows * C) / 256)));
  }

  biasBackward(dbias: Tensor, dout: Tensor): void {
    const [N, C] = rowsCols(dout);
    checkSize(dbias, "dbias", C, "C");
    const sb = this.span(dbias, "dbias");
    const so = this.span(dout, "dout");
    for (const [r0, rows] of this.gpu.rowChunks(N, C, "dout", false)) {
      const blocks = Math.ceil(rows / 256);
      const partial = this.gpu.scratch("colsum", blocks * C);
      this.gpu.run("bias", "bias_backward_partial", "uu", [rows, C], [this.gpu.whole(partial, "partial"), this.gpu.bind(so, r0 * C, rows * C, "dout")], [Math.ceil(C / 64), blocks]);
      this.gpu.run("bias", "bias_backward_finish", "uu", [blocks, C], [this.gpu.whole(sb, "dbias"), this.gpu.whole(partial, "partial")], [Math.ceil(C / 64)]);
    }
  }

  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormForward");
    checkSize(out, "out", inp.size, "inp.size");
    checkSize(rstd, "rstd", N, "N");
    checkFinite(eps, "eps");
    const [so, sr, si, sw] = [this.span(out, "out"), this.span(rstd, "rstd"), this.span(inp, "inp"), this.span(weight, "weight")];
    for (const [r0, rows] of this.gpu.rowChunks(N, C, "inp"))
      this.gpu.run("rmsnorm", "rmsnorm_forward", "uuf", [rows, C, eps],
        [this.gpu.bind(so, r0 * C, rows * C, "out"), this.gpu.bind(sr, r0, rows, "rstd"), this.gpu.bind(si, r0 * C, rows * C, "inp"), this.gpu.whole(sw, "weight")], this.gpu.grid(rows));
  }

  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormBackward");
    checkSize(dinp, "dinp", inp.size, "inp.size");
    checkSize(dout, "dout", inp.size, "inp.size");
    checkSize(dweight, "dweight", C, "C");
    checkSize(rstd, "rstd", N, "N");
    const [sdi, sdw, sdo, si, sw, sr] = [this.span(dinp, "dinp"), this.span(dweight, "dweight"), this.span(dout, "dout"), this.span(inp, "inp"), this.span(weight, "weight"), this.span(rstd, "rstd")];
    for (const [r0, rows] of this.gpu.rowChunks(N, C, "inp")) {
      const bdo = this.gpu.bind(sdo, r0 * C, rows * C, "dout");
      const bi = this.gpu.bind(si, r0 * C, rows * C, "inp");
      const br = this.gpu.bind(sr, r0, rows, "rstd");
      this.gpu.run("rmsnorm", "rmsnorm_backward_rows", "uu", [rows, C], [this.gpu.bind(sdi, r0 * C, rows * C, "dinp"), bdo, bi, this.gpu.whole(sw, "weight"), br], this.gpu.grid(rows));
      const blocks = Math.ceil(rows / 256);
      const partial = this.gpu.scratch("colsum", blocks * C);
      this.gpu.run("rmsnorm", "rmsnorm_dweight_partial", "uu", [rows, C], [this.gpu.whole(partial, "partial"), bdo, bi, br], [Math.ceil(C / 64), blocks]);
      this.gpu.run("rmsnorm", "rmsnorm_dweight_finish", "uu", [blocks, C], [this.gpu.whole(sdw, "dweight"), this.gpu.whole(partial, "partial")], [Math.ceil(C / 64)]);
    }
  }

  /** cos (P, hd/2) then sin (P, hd/2), angles formed in double as native/cpu/rope.cpp does. */
  private ropeTable(theta: number, hd: number): Span {
    const P = this.ropePositions, half = hd / 2;
    return this.gpu.constant(`rope table ${theta}:${hd}`, () => {
      const tab = new Float32Array(2 * P * half);
      const inv = Array.from({ length: half }, (_, i) => Math.pow(theta, (-2 * i) / hd));
      for (let p = 0; p < P; p++) {
        for (let i = 0; i < half; i++) {
          const a = p * inv[i];
          tab[p * half + i] = Math.cos(a);
          tab[P * half + p * half + i] = Math.sin(a);
        }
      }
      return tab;
    });
  }

  private rope(out: Tensor, inp: Tensor, pos: Tensor, theta: number, sign: number): void {
    const [N, nh, hd] = ropeDims(inp, pos);
    checkSize(out, "out", inp.size, "inp.size");
    checkFinite(theta, "theta");
    const so = this.span(out, "out");
    const si = this.span(inp, "inp");
    const sp = this.span(pos, "pos", "i32");
    const table = this.gpu.whole(this.ropeTable(theta, hd), "rope table");
    const inPlace = so.buffer === si.buffer;
    const half = hd / 2;
    for (const [r0, rows] of this.gpu.rowChunks(N, nh * hd, "inp")) {
      const bindings = [this.gpu.bind(so, r0 * nh * hd, rows * nh * hd, "out"), table, this.gpu.bind(sp, r0, rows, "pos")];
      if (!inPlace) bindings.push(this.gpu.bind(si, r0 * nh * hd, rows * nh * hd, "inp"));
      this.gpu.run("rope", inPlace ? "rope_inplace" : "rope", "uuuuff", [rows, nh, half, this.ropePositions, theta, sign], bindings, this.gpu.grid(Math.ceil((rows * nh * half) / 256)));
    }
  }

  ropeForward(out: Tensor, inp: Tensor, pos: Tensor, theta: number): void {
    this.rope(out, inp, pos, theta, 1);
  }

  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void {
    this.rope(dinp, dout, pos, theta, -1);
  }

  attentionForward(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor): void {
    const [B, T, nh, nkv, hd] = attentionDims(q, k);
    checkSize(v, "v", k.size, "k.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    const [so, sl, sq, sk, sv] = [this.span(out, "out"), this.span(lse, "lse"), this.span(q, "q"), this.span(k, "k"), this.span(v, "v")];
    const [qb, kb, lb] = [T * nh * hd, T * nkv * hd, nh * T];
    for (const [b0, nb] of this.gpu.batchChunks(B, [qb, kb, lb], "attention")) {
      const [bo, rq] = this.gpu.window(so, b0 * qb, nb * qb, "out");
      const [bq] = this.gpu.window(sq, b0 * qb, nb * qb, "q");
      const [bk, rk] = this.gpu.window(sk, b0 * kb, nb * kb, "k");
      const [bv] = this.gpu.window(sv, b0 * kb, nb * kb, "v");
      const [bl, rl] = this.gpu.window(sl, b0 * lb, nb * lb, "lse");
      this.gpu.run("attention", "attention_forward", "uuuufuuu", [nb, T, nh, nkv, 1 / Math.sqrt(hd), rq, rk, rl],
        [bo, bl, bq, bk, bv], this.gpu.grid(Math.ceil((nb * nh * T) / 64)), { HD: hd });
    }
  }

  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor): void {
    const [B, T, nh, nkv, hd] = attentionDims(q, k);
    for (const [t, n] of [[dq, "dq"], [dout, "dout"], [out, "out"]] as const) checkSize(t, n, q.size, "q.size");
    for (const [t, n] of [[dk, "dk"], [dv, "dv"], [v, "v"]] as const) checkSize(t, n, k.size, "k.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    const qs = [this.span(dq, "dq"), this.span(dout, "dout"), this.span(q, "q"), this.span(out, "out")];
    const ks = [this.span(dk, "dk"), this.span(dv, "dv"), this.span(k, "k"), this.span(v, "v")];
    const sl = this.span(lse, "lse");
    const [qb, kb, lb] = [T * nh * hd, T * nkv * hd, nh * T];
    for (const [b0, nb] of this.gpu.batchChunks(B, [qb, kb, lb], "attention")) {
      const [bdq, bdout, bq, bout] = qs.map((s) => this.gpu.window(s, b0 * qb, nb * qb, "q-shaped tensor")[0]);
      const [bdk, bdv, bk, bv] = ks.map((s) => this.gpu.window(s, b0 * kb, nb * kb, "k-shaped tensor")[0]);
      const rq = (b0 * qb) % 64, rk = (b0 * kb) % 64;
      const [bl, rl] = this.gpu.window(sl, b0 * lb, nb * lb, "lse");
      const delta = this.gpu.whole(this.gpu.scratch("attn_delta", nb * lb), "delta");
      const params = [nb, T, nh, nkv, 1 / Math.sqrt(hd), rq, rk, rl];
      const qGroups = this.gpu.grid(Math.ceil((nb * nh * T) / 64));
      this.gpu.run("attention", "attention_delta", "uuuufuuu", params, [delta, bdout, bout], qGroups, { HD: hd });
      this.gpu.run("attention", "attention_dq", "uuuufuuu", params, [bdq, bdout, bq, bk, bv, bl, delta], qGroups, { HD: hd });
      this.gpu.run("attention", "attention_dkdv", "uuuufuuu", params, [bdk, bdv, bdout, bq, bk, bv, bl, delta], this.gpu.grid(Math.ceil((nb * nkv * T) / 64)), { HD: hd });
    }
  }

  attentionDecode(out: Tensor, q: Tensor, kCache: Tensor, vCache: Tensor, pos: Tensor): void {
    if (q.shape.length !== 4 || kCache.shape.length !== 4) throw new RangeError("attentionDecode: q (B, Tq, nh, hd) and caches (B, S, nkv, hd) must be 4-D");
    const [B, Tq, nh, hd] = q.shape;
    const [cB, S, nkv, chd] = kCache.shape;
    if (cB !== B || chd !== hd) throw new RangeError(`attentionDecode: cache shape [${kCache.shape}] does not match q [${q.shape}]`);
    if (nkv === 0 || nh % nkv !== 0) throw new RangeError(`attentionDecode: query heads ${nh} must be a multiple of kv heads ${nkv}`);
    checkSize(vCache, "vCache", kCache.size, "kCache.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(pos, "pos", B, "B");
    if (S === 0) throw new RangeError("attentionDecode: cache capacity S must be > 0");
    const [so, sq, skc, svc, sp] = [this.span(out, "out"), this.span(q, "q"), this.span(kCache, "kCache"), this.span(vCache, "vCache"), this.span(pos, "pos", "i32")];
    // NT invocations share a (b, t, h); their partial rows fill NT * hd floats of workgroup memory (<= 16 KiB).
    const NT = Math.max(1, Math.min(32, Math.floor(4096 / hd)));
    const [qb, cb] = [Tq * nh * hd, S * nkv * hd];
    for (const [b0, nb] of this.gpu.batchChunks(B, [qb, cb], "attentionDecode")) {
      const [bo, rq] = this.gpu.window(so, b0 * qb, nb * qb, "out");
      const [bq] = this.gpu.window(sq, b0 * qb, nb * qb, "q");
      const [bk, rc] = this.gpu.window(skc, b0 * cb, nb * cb, "kCache");
      const [bv] = this.gpu.window(svc, b0 * cb, nb * cb, "vCache");
      const [bp, rp] = this.gpu.window(sp, b0, nb, "pos");
      this.gpu.run("attention_decode", "attention_decode", "uuuuufuuu", [nb, Tq, S, nh, nkv, 1 / Math.sqrt(hd), rq, rc, rp],
        [bo, bq, bk, bv, bp], this.gpu.grid(nb * Tq * nh), { HD: hd, NT });
    }
  }

  kvWrite(cache: Tensor, x: Tensor, pos: Tensor): void {
    if (cache.shape.length !== 4 || x.shape.length !== 4) throw new RangeError("kvWrite: cache (B, S, nkv, hd) and x (B, Tq, nkv, hd) must be 4-D");
    const [B, S, nkv, hd] = cache.shape;
    const Tq = x.shape[1];
    if (x.shape[0] !== B || x.shape[2] !== nkv || x.shape[3] !== hd) throw new RangeError(`kvWrite: x shape [${x.shape}] does not match cache [${cache.shape}]`);
    checkSize(pos, "pos", B, "B");
    const [sc, sx, sp] = [this.span(cache, "cache"), this.span(x, "x"), this.span(pos, "pos", "i32")];
    const row = nkv * hd;
    for (const [b0, nb] of this.gpu.batchChunks(B, [S * row, Tq * row], "kvWrite")) {
      const [bc, rc] = this.gpu.window(sc, b0 * S * row, nb * S * row, "cache");
      const [bx, rx] = this.gpu.window(sx, b0 * Tq * row, nb * Tq * row, "x");
      const [bp, rp] = this.gpu.window(sp, b0, nb, "pos");
      this.gpu.run("kv_write", "kv_write", "uuuuuuu", [nb, Tq, S, row, rc, rx, rp], [bc, bx, bp], this.gpu.grid(Math.ceil((nb * Tq * row) / 256)));
    }
  }

  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
    checkSize(gate, "gate", out.size, "out.size");
    checkSize(up, "up", out.size, "out.size");
    const [so, sg, su] = [this.span(out, "out"), this.span(gate, "gate"), this.span(up, "up")];
    for (const [s, n] of this.gpu.chunks(so.len))
      this.gpu.run("swiglu", "swiglu_forward", "u", [n], [this.gpu.bind(so, s, n, "out"), this.gpu.bind(sg, s, n, "gate"), this.gpu.bind(su, s, n, "up")], this.gpu.grid(Math.ceil(n / 256)));
  }

  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void {
    const N = dout.size;
    for (const [t, nm] of [[dgate, "dgate"], [dup, "dup"], [gate, "gate"], [up, "up"]] as const) checkSize(t, nm, N, "dout.size");
    const sp = [this.span(dgate, "dgate"), this.span(dup, "dup"), this.span(dout, "dout"), this.span(gate, "gate"), this.span(up, "up")];
    for (const [s, n] of this.gpu.chunks(N))
      this.gpu.run("swiglu", "swiglu_backward", "u", [n], sp.map((x, i) => this.gpu.bind(x, s, n, ["dgate", "dup", "dout", "gate", "up"][i])), this.gpu.grid(Math.ceil(n / 256)));
  }

  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(targets, "targets", N, "N");
    checkSize(loss, "loss", N, "N");
    const [sl, sx, st] = [this.span(loss, "loss"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.gpu.rowChunks(N, V, "logits"))
      this.gpu.run("crossentropy", "crossentropy_forward", "uu", [rows, V],
        [this.gpu.bind(sl, r0, rows, "loss"), this.gpu.bind(sx, r0 * V, rows * V, "logits"), this.gpu.bind(st, r0, rows, "targets")], this.gpu.grid(rows));
  }

  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(dlogits, "dlogits", N * V, "N*V");
    checkSize(targets, "targets", N, "N");
    checkSize(dloss, "dloss", N, "N");
    const [sd, sdl, sx, st] = [this.span(dlogits, "dlogits"), this.span(dloss, "dloss"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.gpu.rowChunks(N, V, "logits"))
      this.gpu.run("crossentropy", "crossentropy_backward", "uu", [rows, V],
        [this.gpu.bind(sd, r0 * V, rows * V, "dlogits"), this.gpu.bind(sx, r0 * V, rows * V, "logits"), this.gpu.bind(st, r0, rows, "targets"), this.gpu.bind(sdl, r0, rows, "dloss")], this.gpu.grid(rows));
  }

  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void {
    const [N, C] = rowsCols(inp);
    const M = idx.size;
    checkSize(out, "out", M * C, "M*C");
    const [so, si, sx] = [this.span(out, "out"), this.span(inp, "inp"), this.span(idx, "idx", "i32")];
    let first = 1;
    for (const [r0, rows] of this.gpu.rowChunks(N, C, "inp", false)) {
      this.gpu.run("gather", "gather_rows", "uuuuuu", [M, C, N, r0, rows, first],
        [this.gpu.whole(so, "out"), this.gpu.bind(si, r0 * C, rows * C, "inp"), this.gpu.whole(sx, "idx")], this.gpu.grid(Math.ceil((M * C) / 256)));
      first = 0;
    }
  }

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions): void {
    const n = param.size;
    for (const [t, nm] of [[grad, "grad"], [m, "m"], [v, "v"]] as const) checkSize(t, nm, n, "param.size");
    checkInt(o.step, "step");
    const [lr, beta1, beta2, eps, wd] = [checkFinite(o.lr, "lr"), checkFinite(o.beta1, "beta1"), checkFinite(o.beta2, "beta2"), checkFinite(o.eps, "eps"), checkFinite(o.weightDecay, "weightDecay")];
    // Constants exactly as native/cpu/adamw.cpp forms them (double, then rounded to float).
    const f = Math.fround;
    const bc1 = 1 - Math.pow(f(beta1), o.step);
    const bc2 = 1 - Math.pow(f(beta2), o.step);
    const values = [n, f(lr) / bc1, Math.sqrt(bc2), 1 - f(lr) * f(wd), f(1 - f(beta1)), beta2, f(1 - f(beta2)), eps];
    const sp = [this.span(param, "param"), this.span(m, "m"), this.span(v, "v"), this.span(grad, "grad")];
    for (const [s, cnt] of this.gpu.chunks(n)) {
      values[0] = cnt;
      this.gpu.run("adamw", "adamw", "ufffffff", values, sp.map((x, i) => this.gpu.bind(x, s, cnt, ["param", "m", "v", "grad"][i])), this.gpu.grid(Math.ceil(cnt / 256)));
    }
  }

  // ---- fused kernels ------------------------------------------------------------------
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void {
    const [N, V] = logprobFromLogitsDims(logprob, entropy, logits, targets, temperature);
    const [sl, se, sx, st] = [this.span(logprob, "logprob"), this.span(entropy, "entropy"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.gpu.rowChunks(N, V, "logits"))
      this.gpu.run("logprob_from_logits", "logprob_from_logits", "uuf", [rows, V, 1 / temperature],
        [this.gpu.bind(sl, r0, rows, "logprob"), this.gpu.bind(se, r0, rows, "entropy"), this.gpu.bind(sx, r0 * V, rows * V, "logits"), this.gpu.bind(st, r0, rows, "targets")], this.gpu.grid(rows));
  }

  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): void {
    const [B, V] = sampleDims(ids, logits, seeds, o);
    const [si, sx] = [this.span(ids, "ids", "i32"), this.span(logits, "logits")];
    if (B === 0) return;
    const greedy = o.greedy || !(o.temperature > 0) ? 1 : 0;
    // The CPU's uniform for each seed, so seeded draws agree across backends.
    const u = this.gpu.scratch("sample_u", B);
    this.gpu.flush(); // the writeBuffer below must not overtake an earlier, unsubmitted sample
    this.gpu.device.queue.writeBuffer(u.buffer, 0, Float32Array.from(seeds, sampleUniform));
    for (const [r0, rows] of this.gpu.rowChunks(B, V, "logits")) {
      const q = this.gpu.scratch("sample_q", rows * V);
      this.gpu.run("sample", "sample", "uuuufffu", [rows, V, greedy, o.topK, greedy ? 1 : 1 / o.temperature, o.topP, o.minP, 31],
        [this.gpu.bind(si, r0, rows, "ids"), this.gpu.whole(q, "q"), this.gpu.bind(sx, r0 * V, rows * V, "logits"), this.gpu.bind(u, r0, rows, "u")], this.gpu.grid(rows));
    }
  }

  /** Vocabulary chunk for the fused linear log-prob: the (N, Vc) logits scratch and the weight rows fit a binding. */
  private vocabChunk(N: number, H: number, V: number): number {
    const zBudget = Math.min(this.gpu.maxElems, 8 << 20);
    let vc = Math.floor(zBudget / Math.max(N, 1) / 64) * 64;
    vc = Math.min(vc, Math.floor(this.gpu.maxElems / H / 64) * 64);
    if (vc < 64) throw new RangeError(`webgpu: linear log-prob with N=${N}, H=${H} does not fit the ${this.gpu.maxBinding}-byte binding limit; split the batch`);
    return Math.min(vc, V);
  }

  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobForward", hidden, weight, [[logprob, "logprob"], [entropy, "entropy"], [lse, "lse"], [targets, "targets"]], temperature);
    const [sl, se, sls, sh, sw, st] = [this.span(logprob, "logprob"), this.span(entropy, "entropy"), this.span(lse, "lse"), this.span(hidden, "hidden"), this.weightSpan(weight, "weight"), this.span(targets, "targets", "i32")];
    if (N === 0) return;
    const Vc = this.vocabChunk(N, H, V);
    const z = this.gpu.scratch("ll_z", N * Vc);
    const state = this.gpu.whole(this.gpu.scratch("ll_state", N * 4), "state");
    const invT = 1 / temperature;
    for (let v0 = 0; v0 < V; v0 += Vc) {
      const vc = Math.min(Vc, V - v0);
      const zs: Span = { buffer: z.buffer, off: 0, len: N * vc };
      this.mm(zs, sh, { ...sw, off: v0 * H, len: vc * H }, N, vc, H, false, true, false, invT);
      this.gpu.run("linear_logprob", "ll_update", "uuuufu", [N, vc, v0, v0 === 0 ? 1 : 0, invT, V], [state, this.gpu.whole(zs, "z"), this.gpu.whole(st, "targets")], this.gpu.grid(N));
    }
    this.gpu.run("linear_logprob", "ll_finalize", "uuuufu", [N, 0, 0, 0, invT, V],
      [this.gpu.whole(sl, "logprob"), this.gpu.whole(se, "entropy"), this.gpu.whole(sls, "lse"), state, this.gpu.whole(st, "targets")], this.gpu.grid(Math.ceil(N / 256)));
  }

  linearLogprobBackward(dhidden: Tensor, dweight: Tensor | null, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobBackward", hidden, weight, [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [lse, "lse"], [entropy, "entropy"], [targets, "targets"]], temperature);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    if (dweight) checkSize(dweight, "dweight", V * H, "V*H");
    const sdh = this.span(dhidden, "dhidden");
    const sdw = dweight ? this.span(dweight, "dweight") : null;
    const sh = this.span(hidden, "hidden");
    const sw = this.weightSpan(weight, "weight");
    const rowBindings = [this.span(targets, "targets", "i32"), this.span(lse, "lse"), this.span(entropy, "entropy"), this.span(dlogprob, "dlogprob"), this.span(dentropy, "dentropy")].map((s) => this.gpu.whole(s, "per-token input"));
    if (N === 0) return;
    const Vc = this.vocabChunk(N, H, V);
    const z = this.gpu.scratch("ll_z", N * Vc);
    const invT = 1 / temperature;
    for (let v0 = 0; v0 < V; v0 += Vc) {
      const vc = Math.min(Vc, V - v0);
      const zs: Span = { buffer: z.buffer, off: 0, len: N * vc };
      const wc: WeightSpan = { ...sw, off: v0 * H, len: vc * H };
      this.mm(zs, sh, wc, N, vc, H, false, true, false, invT);
      this.gpu.run("linear_logprob", "ll_dz", "uuuufu", [N, vc, v0, 0, invT, V], [this.gpu.whole(zs, "dz"), ...rowBindings], this.gpu.grid(Math.ceil((N * vc) / 256)));
      this.mm(sdh, zs, wc, N, H, vc, false, false, v0 > 0, 1);
      if (sdw) this.mm({ buffer: sdw.buffer, off: v0 * H, len: vc * H }, zs, { ...sh, bf16: false }, vc, H, N, true, false, true, 1);
    }
    if (V === 0) this.fill(dhidden, 0);
  }

  grpoLoss(dlogprob: Tensor, dentropy: Tensor, stats: Tensor, logprob: Tensor, oldLogprob: Tensor, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, entropy: Tensor | null, advantages: Tensor, mask: Tensor, o: GrpoLossOptions): void {
    grpoLossDims(dlogprob, dentropy, stats, logprob, oldLogprob, refLogprob, rolloutLogprob, entropy, advantages, mask, o);
    const sp = (t: Tensor | null, n: string) => (t === null ? null : this.span(t, n));
    this.runGrpoLoss(this.span(dlogprob, "dlogprob"), this.span(dentropy, "dentropy"), this.span(stats, "stats"), this.span(logprob, "logprob"), this.span(oldLogprob, "oldLogprob"),
      sp(refLogprob, "refLogprob"), sp(rolloutLogprob, "rolloutLogprob"), sp(entropy, "entropy"), this.span(advantages, "advantages"), this.span(mask, "mask"), o);
  }

  private runGrpoLoss(dlogprob: Span, dentropy: Span, stats: Span, logprob: Span, oldLogprob: Span, refLogprob: Span | null, rolloutLogprob: Span | null, entropy: Span | null, advantages: Span, mask: Span, o: GrpoLossOptions): void {
    const b = (s: Span, n: string) => this.gpu.whole(s, n);
    // Optional inputs: bind the logprob in their place and tell the kernel they are absent.
    const opt = (s: Span | null, n: string) => b(s ?? logprob, n);
    this.gpu.run("grpo_loss", "grpo_loss", "uuffffuffuuuuu",
      [o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap, AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
        refLogprob ? 1 : 0, rolloutLogprob ? 1 : 0, entropy ? 1 : 0],
      [b(dlogprob, "dlogprob"), b(dentropy, "dentropy"), b(stats, "stats"), b(logprob, "logprob"), b(oldLogprob, "oldLogprob"),
        opt(refLogprob, "refLogprob"), opt(rolloutLogprob, "rolloutLogprob"), opt(entropy, "entropy"), b(advantages, "advantages"), b(mask, "mask")], [1]);
  }

  // One pass per block of nb token rows (kernels/linear_grpo_loss.wgsl): 3 matmuls, not the
  // composition's 4. It needs the LM head in one binding and a block of at least 64 whole
  // logits rows in the 8M-float scratch; other shapes take the composition (same results).
  linearLogprobForwardBackward(...args: Parameters<Backend["linearLogprobForwardBackward"]>): void {
    linearLogprobComposed(this, ...args); // no one-pass WGSL kernel yet: forward, then backward
  }

  // No one-pass WGSL kernel: forward, lossGrad, backward.
  async linearSequenceLoss(logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, segment: Int32Array, groupOf: Int32Array, lossGrad: SegmentLossGrad, temperature: number): Promise<Float64Array> {
    linearSequenceLossDims(logprob, entropy, dhidden, dweight, hidden, weight, targets, segment, groupOf, temperature);
    return linearSequenceComposed(this, logprob, entropy, dhidden, dweight, hidden, weight, targets, segment, groupOf, lossGrad, temperature);
  }

  linearGrpoLoss(dhidden: Tensor, dweight: Tensor | null, stats: Tensor, logprob: Tensor, entropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, oldLogprob: Tensor | null, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, advantages: Tensor, mask: Tensor, temperature: number, o: LinearGrpoLossOptions): void {
    const [N, H, V] = linearGrpoLossDims(dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, oldLogprob, refLogprob, rolloutLogprob, advantages, mask, temperature, o);
    const rowsFit = Math.floor(Math.min(this.gpu.maxElems, 8 << 20) / V);
    // A frozen head (bf16, no dW) takes the composition, whose kernels read bf16 weights.
    if (dweight === null || weight.dtype === "bf16" || V * H > this.gpu.maxElems || (rowsFit < N && rowsFit < 64))
      return linearGrpoLossComposed(this, dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, oldLogprob, refLogprob, rolloutLogprob, advantages, mask, temperature, o);
    // Blocks start at multiples of 64 rows: per-row windows stay aligned to the binding offset rule.
    const nb = rowsFit >= N ? N : Math.floor(rowsFit / 64) * 64;
    const [sdh, sdw, sst, slp, sent, sh, sw, stg, sadv, smask] = [this.span(dhidden, "dhidden"), this.span(dweight, "dweight"), this.span(stats, "stats"), this.span(logprob, "logprob"), this.span(entropy, "entropy"),
      this.span(hidden, "hidden"), this.weightSpan(weight, "weight"), this.span(targets, "targets", "i32"), this.span(advantages, "advantages"), this.span(mask, "mask")];
    const sp = (t: Tensor | null, n: string) => (t === null ? null : this.span(t, n));
    const [sold, sref, sroll] = [sp(oldLogprob, "oldLogprob"), sp(refLogprob, "refLogprob"), sp(rolloutLogprob, "rolloutLogprob")];
    const [wt, dlp, dent, lse] = ["lgl_wt", "lgl_dlp", "lgl_dent", "lgl_lse"].map((k) => this.gpu.scratch(k, N));
    const z = this.gpu.scratch("ll_z", nb * V);
    const state = this.gpu.whole(this.gpu.scratch("ll_state", nb * 4), "state");
    const invT = 1 / temperature;
    const types = "uuuuffffuffuuuuf";
    const params = (r0: number, n: number) => [o.B, o.T, r0, n, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap, AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T, sold ? 1 : 0, sref ? 1 : 0, o.lossScale ?? 1];
    const w = (s: Span, n: string) => this.gpu.whole(s, n);
    this.gpu.run("linear_grpo_loss", "lgl_weights", types, params(0, 0), [w(wt, "wt"), w(smask, "mask")], [1]);
    for (let r0 = 0; r0 < N; r0 += nb) {
      const n = Math.min(nb, N - r0);
      const rows = (s: Span, what: string) => this.gpu.bind(s, r0, n, what);
      const zs: Span = { buffer: z.buffer, off: 0, len: n * V };
      const hb: Span = { buffer: sh.buffer, off: r0 * H, len: n * H };
      this.mm(zs, hb, sw, n, V, H, false, true, false, invT);
      this.gpu.run("linear_logprob", "ll_update", "uuuufu", [n, V, 0, 1, invT, V], [state, w(zs, "z"), rows(stg, "targets")], this.gpu.grid(n));
      this.gpu.run("linear_logprob", "ll_finalize", "uuuufu", [n, 0, 0, 0, invT, V],
        [rows(slp, "logprob"), rows(sent, "entropy"), rows(lse, "lse"), state, rows(stg, "targets")], this.gpu.grid(Math.ceil(n / 256)));
      this.gpu.run("linear_grpo_loss", "lgl_token", types, params(r0, n),
        [w(dlp, "dlogprob"), w(dent, "dentropy"), w(wt, "wt"), w(slp, "logprob"), w(sold ?? slp, "oldLogprob"), w(sref ?? slp, "refLogprob"), w(sroll ?? slp, "rolloutLogprob"), w(sadv, "advantages")],
        this.gpu.grid(Math.ceil(n / 256)));
      this.gpu.run("linear_logprob", "ll_dz", "uuuufu", [n, V, 0, 0, invT, V],
        [w(zs, "dz"), rows(stg, "targets"), rows(lse, "lse"), rows(sent, "entropy"), rows(dlp, "dlogprob"), rows(dent, "dentropy")], this.gpu.grid(Math.ceil((n * V) / 256)));
      this.mm({ buffer: sdh.buffer, off: r0 * H, len: n * H }, zs, sw, n, H, V, false, false, false, 1);
      this.mm(sdw, zs, { ...hb, bf16: false }, V, H, n, true, false, true, 1);
    }
    // The stats: the GRPO loss itself on the log-probs and entropies (its gradients are not used).
    const { lossScale: _, ...loss } = o;
    this.runGrpoLoss(dlp, dent, sst, slp, sold ?? slp, sref, sroll, sent, sadv, smask, loss);
  }
}

/** The sampler's uniform in [0, 1) for a seed: splitmix64(seed) >> 11 over 2^53, as native/cpu/sample.cpp. */
export function sampleUniform(seed: number): number {
  const M = (1n << 64n) - 1n;
  let x = (BigInt(seed >>> 0) + 0x9e3779b97f4a7c15n) & M;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M;
  x ^= x >> 31n;
  return Number(x >> 11n) / 2 ** 53;
}
