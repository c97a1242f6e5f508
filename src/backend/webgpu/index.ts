// WebGPU backend: tensors are GPUBuffers, ops dispatch the WGSL kernels in kernels/ (same
// names as native/cpu) through Dawn. Runs anywhere Dawn finds an adapter, including Mesa's
// lavapipe on a CPU-only machine.
//
// How work reaches the GPU
// - Ops encode dispatches into one compute pass of one pending command encoder (copies end the
//   pass); it is submitted when it holds RING_SLOTS dispatches, and before anything that must
//   observe the results (read, sync, write, dispose). A decode step's hundreds of ops: few submits.
// - Scalars go in one uniform ring buffer: each dispatch takes a 256-byte slot, the host copy is
//   uploaded with a single writeBuffer just before the submit (queue-ordered, so the ring is
//   safely reused by the next batch).
// - One storage binding is capped (128 MiB on lavapipe). Every op binds windows of its
//   tensors: elementwise ops and row-wise ops run in chunks, matmul splits into M/N/K blocks,
//   vocabulary-sized tables are walked in row chunks, attention and the KV cache split over the
//   batch (those kernels take element offsets). Window starts are multiples of 64 elements
//   (256 bytes, the offset alignment). A binding that cannot be split throws a RangeError.
// - Kernels cannot throw: ids / targets / positions out of range give zero rows, NaN, or
//   skipped writes (documented per kernel) where the CPU backend throws.
// - On lavapipe a workgroup runs on one CPU thread and each barrier switches coroutines per
//   8-wide subgroup, so row reductions use 64-wide workgroups with few barriers. The first
//   dispatch of each pipeline JIT-compiles it (seconds); Mesa caches the result on disk.
// - No float atomics in WebGPU: reductions (sumSquares, dbias, dweight of RMSNorm, embedding
//   backward, attention dk/dv under GQA) are written race-free: two-pass partial sums, or one
//   invocation owning each output.
import {
  numel,
  type AdamWOptions,
  type Backend,
  type DType,
  type GrpoLossOptions,
  type MatmulOptions,
  type SampleOptions,
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
  grpoLossDims,
  linearLogprobDims,
  logprobFromLogitsDims,
  matmulDims,
  rmsnormDims,
  ropeDims,
  rowsCols,
  sampleDims,
} from "../check.js";
import { createContext, describeAdapter, type AdapterDescription, type GpuContext } from "./device.js";
import { PipelineCache, type Defines } from "./pipelines.js";
import { GpuTensor, bufferBytes } from "./tensor.js";

/** A window of a buffer, in f32/i32 elements. */
interface Span {
  buffer: GPUBuffer;
  off: number;
  len: number;
}

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

const RING_SLOTS = 128;
const SLOT_BYTES = 256;
const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  private readonly device: GPUDevice;
  private readonly pipelines: PipelineCache;
  private readonly layouts = new Map<GPUComputePipeline, GPUBindGroupLayout>();
  private readonly maxBinding: number;
  /** Largest window in elements, a multiple of 64. */
  private readonly maxElems: number;
  private readonly offsetAlign: number;
  private readonly ropePositions: number;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly ring: GPUBuffer;
  private readonly ringHost = new ArrayBuffer(RING_SLOTS * SLOT_BYTES);
  private readonly ringU32 = new Uint32Array(this.ringHost);
  private readonly ringI32 = new Int32Array(this.ringHost);
  private readonly ringF32 = new Float32Array(this.ringHost);
  private slot = 0;
  private readonly toDestroy: GPUBuffer[] = [];
  private readonly scratchBuffers = new Map<string, GPUBuffer>();
  private readonly ropeTables = new Map<string, GPUBuffer>();
  private errors: string[] = [];
  private lost: string | null = null;
  private destroyed = false;

  private constructor(
    /** Holds Dawn's GPU object for the device's whole life (see device.ts). */
    private readonly ctx: GpuContext,
    opts: WebGpuOptions,
  ) {
    this.device = ctx.device;
    this.pipelines = new PipelineCache(this.device);
    const limit = this.device.limits.maxStorageBufferBindingSize;
    this.maxBinding = Math.min(limit, opts.maxBindingBytes ?? limit);
    this.maxElems = Math.floor(this.maxBinding / 4 / 64) * 64;
    if (this.maxElems < 64) throw new RangeError(`webgpu: maxBindingBytes ${this.maxBinding} is too small`);
    this.offsetAlign = this.device.limits.minStorageBufferOffsetAlignment;
    if (256 % this.offsetAlign !== 0) throw new Error(`webgpu: storage offset alignment ${this.offsetAlign} is not supported`);
    this.ropePositions = opts.ropeTablePositions ?? 32768;
    this.ring = this.device.createBuffer({ label: "uniform ring", size: RING_SLOTS * SLOT_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(ev.error.message);
    };
    void this.device.lost.then((info) => {
      if (!this.destroyed) this.lost = info.message || String(info.reason);
    });
  }

  /** Creates the backend on the default adapter; throws an Error saying why when there is none. */
  static async create(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await createContext(), opts);
  }

  describe(): WebGpuDescription {
    return { backend: "webgpu", adapter: describeAdapter(this.ctx.adapter), f16: this.ctx.f16, subgroups: this.ctx.subgroups, maxBindingBytes: this.maxBinding };
  }

  // ---- submission plumbing ------------------------------------------------------------

  /** Submits the pending work (if any) and frees buffers that were waiting for it. */
  private flush(): void {
    if (this.encoder) {
      this.endPass();
      if (this.slot > 0) this.device.queue.writeBuffer(this.ring, 0, this.ringHost, 0, this.slot * SLOT_BYTES);
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.slot = 0;
    }
    for (const b of this.toDestroy) b.destroy();
    this.toDestroy.length = 0;
  }

  /** The pending encoder, for copies: any open compute pass is ended first. */
  private enc(): GPUCommandEncoder {
    if (this.destroyed) throw new Error("webgpu: backend was destroyed");
    this.endPass();
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  /**
   * Consecutive dispatches share one compute pass (cheaper to encode); WebGPU orders them and
   * makes each one's writes visible to the next, as separate passes would.
   */
  private computePass(): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    this.pass = this.enc().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /**
   * Encodes one dispatch. Binding 0 is the uniform params (types: u = u32, i = i32, f = f32),
   * bindings 1.. are the given storage windows, in order.
   */
  private run(file: string, entry: string, types: string, values: readonly number[], bindings: GPUBufferBinding[], groups: readonly number[], defines?: Defines): void {
    if (groups.some((g) => g === 0)) return;
    const pipeline = this.pipelines.get(file, entry, defines);
    let layout = this.layouts.get(pipeline);
    if (!layout) this.layouts.set(pipeline, (layout = pipeline.getBindGroupLayout(0)));
    if (this.slot === RING_SLOTS) this.flush();
    const base = (this.slot * SLOT_BYTES) / 4;
    for (let i = 0; i < types.length; i++) {
      const v = values[i];
      if (types[i] === "f") this.ringF32[base + i] = v;
      else if (types[i] === "i") this.ringI32[base + i] = v;
      else this.ringU32[base + i] = v >>> 0;
    }
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.ring, offset: this.slot * SLOT_BYTES, size: SLOT_BYTES } }];
    bindings.forEach((b, i) => entries.push({ binding: i + 1, resource: b }));
    const bindGroup = this.device.createBindGroup({ layout, entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    this.slot++;
  }

  /** Workgroup grid for `n` workgroups, folded into 2-D past the 65535-per-dimension limit. */
  private grid(n: number): [number, number] {
    if (n <= 65535) return [n, 1];
    const y = Math.ceil(n / 65535);
    return [Math.ceil(n / y), y];
  }

  private bind(s: Span, start: number, count: number, what: string): GPUBufferBinding {
    const offset = (s.off + start) * 4;
    if (offset % this.offsetAlign !== 0) throw new Error(`webgpu internal error: ${what} window at byte ${offset} is not aligned to ${this.offsetAlign}`);
    const size = Math.max(1, count) * 4;
    if (size > this.maxBinding)
      throw new RangeError(`webgpu: ${what} needs a ${size}-byte storage binding, over this device's limit of ${this.maxBinding} bytes (this op cannot split it)`);
    return { buffer: s.buffer, offset, size };
  }

  private whole(s: Span, what: string): GPUBufferBinding {
    return this.bind(s, 0, s.len, what);
  }

  private span(t: Tensor, name: string, dtype: DType = "f32"): Span {
    const g = checkTensor(t, name, this, dtype) as GpuTensor;
    return { buffer: g.buffer, off: 0, len: g.size };
  }

  /** Scratch buffer reused across ops (the GPU runs them in order, so sharing is safe). */
  private scratch(key: string, elements: number): Span {
    const bytes = bufferBytes(elements);
    let b = this.scratchBuffers.get(key);
    if (!b || b.size < bytes) {
      if (b) this.toDestroy.push(b);
      b = this.device.createBuffer({ label: `scratch ${key}`, size: Math.max(bytes, Math.ceil((b?.size ?? 0) * 1.5 / 16) * 16), usage: STORAGE() });
      this.scratchBuffers.set(key, b);
    }
    return { buffer: b, off: 0, len: elements };
  }

  /** [start, count] element chunks that fit one binding; starts are multiples of 64. */
  private *chunks(n: number): Generator<[number, number]> {
    for (let s = 0; s < n; s += this.maxElems) yield [s, Math.min(this.maxElems, n - s)];
  }

  /** [firstRow, rows] chunks of a (rows, rowLen) matrix that fit one binding, each starting 256-byte aligned. */
  private *rowChunks(rows: number, rowLen: number, what: string, perRowBindings = true): Generator<[number, number]> {
    if (rows * rowLen <= this.maxElems) {
      yield [0, rows];
      return;
    }
    // A chunk must start on a 256-byte boundary: r0 * rowLen a multiple of 64 elements, and
    // r0 itself a multiple of 64 when per-row vectors (rstd, loss, pos, ...) are bound too.
    const unit = perRowBindings ? 64 : 64 / gcd(rowLen, 64);
    const per = Math.floor(this.maxElems / rowLen / unit) * unit;
    if (per === 0) throw new RangeError(`webgpu: ${what} rows of ${rowLen} elements are too long to split under the ${this.maxBinding}-byte binding limit`);
    for (let r = 0; r < rows; r += per) yield [r, Math.min(per, rows - r)];
  }

  private checkErrors(): void {
    if (this.lost) throw new Error(`webgpu: device lost: ${this.lost}`);
    if (this.errors.length) {
      const msg = this.errors.join("\n");
      this.errors = [];
      throw new Error(`webgpu: ${msg}`);
    }
  }

  /** Called by GpuTensor.dispose: destroyed now, or after pending work that may use it is submitted. */
  releaseBuffer(buffer: GPUBuffer): void {
    if (this.encoder) this.toDestroy.push(buffer);
    else buffer.destroy();
  }

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype: DType = "f32"): GpuTensor {
    for (const d of shape) checkInt(d, "shape dimension", 0);
    const n = numel(shape);
    const buffer = this.device.createBuffer({ size: bufferBytes(n), usage: STORAGE() }); // WebGPU zero-fills
    return new GpuTensor(this, [...shape], dtype, buffer);
  }

  upload(data: Float32Array | Int32Array, shape: readonly number[]): GpuTensor {
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) throw new TypeError("upload: data must be a Float32Array or Int32Array");
    for (const d of shape) checkInt(d, "shape dimension", 0);
    const n = numel(shape);
    if (data.length !== n) throw new RangeError(`data has ${data.length} elements, shape [${shape.join(", ")}] needs ${n}`);
    const buffer = this.device.createBuffer({ size: bufferBytes(n), usage: STORAGE(), mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    return new GpuTensor(this, [...shape], data instanceof Int32Array ? "i32" : "f32", buffer);
  }

  view(t: Tensor, shape: readonly number[]): GpuTensor {
    const g = checkTensor(t, "t", this, t.dtype) as GpuTensor;
    for (const d of shape) checkInt(d, "shape dimension", 0);
    if (numel(shape) !== g.size) throw new RangeError(`view: shape [${shape.join(", ")}] has ${numel(shape)} elements, tensor has ${g.size}`);
    return new GpuTensor(this, [...shape], g.dtype, g.buffer, g.base ?? g);
  }

  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    const s = this.span(t, "t", t.dtype);
    const out = t.dtype === "i32" ? new Int32Array(s.len) : new Float32Array(s.len);
    if (s.len === 0) {
      this.flush();
      this.checkErrors();
      return out;
    }
    const staging = this.device.createBuffer({ size: s.len * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.enc().copyBufferToBuffer(s.buffer, 0, staging, 0, s.len * 4);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
      new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange()));
      staging.unmap();
    } finally {
      staging.destroy();
    }
    this.checkErrors();
    return out;
  }

  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const s = this.span(t, "t", t.dtype);
    if ((t.dtype === "f32") !== data instanceof Float32Array) throw new TypeError(`write: data must be ${t.dtype === "f32" ? "a Float32Array" : "an Int32Array"} for a ${t.dtype} tensor`);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > s.len) throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in ${s.len}`);
    if (data.length === 0) return;
    this.flush(); // writeBuffer is ordered against submits, not against our unsubmitted encoder
    this.device.queue.writeBuffer(s.buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  copy(dst: Tensor, src: Tensor, dstOffset = 0, srcOffset = 0, count?: number): void {
    const d = this.span(dst, "dst", dst.dtype);
    const s = this.span(src, "src", dst.dtype);
    const n = count ?? Math.min(d.len - dstOffset, s.len - srcOffset);
    if (dstOffset < 0 || srcOffset < 0 || n < 0 || dstOffset + n > d.len || srcOffset + n > s.len)
      throw new RangeError(`copy: range out of bounds (dst ${dstOffset}+${n} of ${d.len}, src ${srcOffset}+${n} of ${s.len})`);
    if (n === 0) return;
    const enc = this.enc();
    if (d.buffer === s.buffer && Math.abs(dstOffset - srcOffset) < n) {
      // Overlapping ranges of one buffer: WebGPU forbids that copy, so bounce through scratch.
      const tmp = this.scratch("copy", n);
      enc.copyBufferToBuffer(s.buffer, srcOffset * 4, tmp.buffer, 0, n * 4);
      enc.copyBufferToBuffer(tmp.buffer, 0, d.buffer, dstOffset * 4, n * 4);
    } else {
      enc.copyBufferToBuffer(s.buffer, srcOffset * 4, d.buffer, dstOffset * 4, n * 4);
    }
  }

  fill(t: Tensor, value: number): void {
    const s = this.span(t, "t", t.dtype);
    let bits: number;
    if (t.dtype === "i32") bits = checkInt(value, "value", -(2 ** 31)) | 0;
    else bits = new Uint32Array(new Float32Array([value]).buffer)[0];
    for (const [start, n] of this.chunks(s.len)) this.run("elementwise", "fill", "uu", [n, bits], [this.bind(s, start, n, "t")], this.grid(Math.ceil(n / 256)));
  }

  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    for (const b of this.scratchBuffers.values()) b.destroy();
    for (const b of this.ropeTables.values()) b.destroy();
    this.scratchBuffers.clear();
    this.ropeTables.clear();
    this.ring.destroy();
    this.device.destroy();
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
    for (const [s, n] of this.chunks(o.len))
      this.run("elementwise", "add", "u", [n], [this.bind(o, s, n, "out"), this.bind(sa, s, n, "a"), this.bind(sb, s, n, "b")], this.grid(Math.ceil(n / 256)));
  }

  accumulate(dst: Tensor, src: Tensor, alpha = 1): void {
    const d = this.span(dst, "dst");
    const s = this.span(src, "src");
    checkSize(src, "src", d.len, "dst.size");
    checkFinite(alpha, "alpha");
    for (const [st, n] of this.chunks(d.len))
      this.run("elementwise", "accumulate", "uf", [n, alpha], [this.bind(d, st, n, "dst"), this.bind(s, st, n, "src")], this.grid(Math.ceil(n / 256)));
  }

  scale(t: Tensor, alpha: number): void {
    const s = this.span(t, "t");
    checkFinite(alpha, "alpha");
    for (const [st, n] of this.chunks(s.len)) this.run("elementwise", "scale", "uf", [n, alpha], [this.bind(s, st, n, "t")], this.grid(Math.ceil(n / 256)));
  }

  sumSquares(out: Tensor, t: Tensor): void {
    const o = this.span(out, "out");
    checkSize(out, "out", 1, "1");
    const s = this.span(t, "t");
    const partial = this.scratch("sumsq", 1024);
    for (const [st, n] of this.chunks(s.len)) {
      const groups = Math.min(1024, Math.ceil(n / 256));
      this.run("elementwise", "sum_squares_partial", "uu", [n, groups], [this.whole(partial, "partial"), this.bind(s, st, n, "t")], [groups]);
      this.run("elementwise", "sum_squares_finish", "uu", [n, groups], [this.whole(o, "out"), this.whole(partial, "partial")], [1]);
    }
  }

  // ---- decoder ops --------------------------------------------------------------------
  embeddingForward(out: Tensor, ids: Tensor, table: Tensor): void {
    const [V, C] = rowsCols(table);
    const N = ids.size;
    checkSize(out, "out", N * C, "N*C");
    const o = this.span(out, "out");
    const si = this.span(ids, "ids", "i32");
    const st = this.span(table, "table");
    let first = 1;
    for (const [v0, Vc] of this.rowChunks(V, C, "table", false)) {
      this.run("embedding", "embedding_forward", "uuuuuu", [N, C, V, v0, Vc, first],
        [this.whole(o, "out"), this.whole(si, "ids"), this.bind(st, v0 * C, Vc * C, "table")], this.grid(Math.ceil((N * C) / 256)));
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
    const links = this.scratch("embedding_links", 2 * N);
    this.run("embedding", "embedding_links", "uuuuuu", [N, C, V, 0, V, 0], [this.whole(links, "links"), this.whole(si, "ids")], this.grid(Math.ceil(N / 256)));
    for (const [v0, Vc] of this.rowChunks(V, C, "dtable", false)) {
      this.run("embedding", "embedding_backward", "uuuuuu", [N, C, V, v0, Vc, 0],
        [this.bind(sd, v0 * C, Vc * C, "dtable"), this.whole(so, "dout"), this.whole(si, "ids"), this.whole(links, "links")], this.grid(Math.ceil((N * C) / 256)));
    }
  }

  matmul(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions = {}): void {
    const { M, N, K, transA, transB, accumulate, alpha } = matmulDims(out, a, b, opts);
    this.mm(this.span(out, "out"), this.span(a, "a"), this.span(b, "b"), M, N, K, transA, transB, accumulate, alpha);
  }

  /**
   * out (M, N) (+)= alpha * op(a) @ op(b) on spans, split into blocks whose windows fit one
   * binding. A K-split turns later blocks into accumulations.
   */
  private mm(out: Span, a: Span, b: Span, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean, alpha: number): void {
    if (M === 0 || N === 0) return;
    if (K === 0) {
      if (!accumulate) for (const [s, n] of this.chunks(M * N)) this.run("elementwise", "fill", "uu", [n, 0], [this.bind(out, s, n, "out")], this.grid(Math.ceil(n / 256)));
      return;
    }
    const L = this.maxElems;
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
        if (mb * nb * kb === before) throw new RangeError(`webgpu: matmul (${M}, ${N}, ${K}) cannot be split to fit ${this.maxBinding}-byte bindings`);
      }
    }
    for (let m0 = 0; m0 < M; m0 += mb) {
      const mc = Math.min(mb, M - m0);
      for (let n0 = 0; n0 < N; n0 += nb) {
        const nc = Math.min(nb, N - n0);
        for (let k0 = 0; k0 < K; k0 += kb) {
          const kc = Math.min(kb, K - k0);
          const bo = this.bind(out, m0 * N + n0, (mc - 1) * N + nc, "matmul out");
          const ba = transA ? this.bind(a, k0 * M + m0, (kc - 1) * M + mc, "matmul a") : this.bind(a, m0 * K + k0, (mc - 1) * K + kc, "matmul a");
          const bb = transB ? this.bind(b, n0 * K + k0, (nc - 1) * K + kc, "matmul b") : this.bind(b, k0 * N + n0, (kc - 1) * N + nc, "matmul b");
          const params = [mc, nc, kc, transA ? M : K, transB ? K : N, N, transA ? 1 : 0, transB ? 1 : 0, accumulate || k0 > 0 ? 1 : 0, alpha];
          if (mc <= 32) {
            // Few rows (decode): one invocation per column for all rows, instead of mostly-empty 64x64 tiles.
            const MR = mc <= 4 ? 4 : mc <= 8 ? 8 : mc <= 16 ? 16 : 32;
            this.run("matmul_skinny", "main", "uuuuuuuuuf", params, [bo, ba, bb], [Math.ceil(nc / 64)], { MR });
          } else {
            this.run("matmul", "main", "uuuuuuuuuf", params, [bo, ba, bb], [Math.ceil(nc / 64), Math.ceil(mc / 64)]);
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
    for (const [r0, rows] of this.rowChunks(N, C, "out", false))
      this.run("bias", "bias_add", "uu", [rows, C], [this.bind(o, r0 * C, rows * C, "out"), this.whole(sb, "bias")], this.grid(Math.ceil((rows * C) / 256)));
  }

  biasBackward(dbias: Tensor, dout: Tensor): void {
    const [N, C] = rowsCols(dout);
    checkSize(dbias, "dbias", C, "C");
    const sb = this.span(dbias, "dbias");
    const so = this.span(dout, "dout");
    for (const [r0, rows] of this.rowChunks(N, C, "dout", false)) {
      const blocks = Math.ceil(rows / 256);
      const partial = this.scratch("colsum", blocks * C);
      this.run("bias", "bias_backward_partial", "uu", [rows, C], [this.whole(partial, "partial"), this.bind(so, r0 * C, rows * C, "dout")], [Math.ceil(C / 64), blocks]);
      this.run("bias", "bias_backward_finish", "uu", [blocks, C], [this.whole(sb, "dbias"), this.whole(partial, "partial")], [Math.ceil(C / 64)]);
    }
  }

  rmsnormForward(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormForward");
    checkSize(out, "out", inp.size, "inp.size");
    checkSize(rstd, "rstd", N, "N");
    checkFinite(eps, "eps");
    const [so, sr, si, sw] = [this.span(out, "out"), this.span(rstd, "rstd"), this.span(inp, "inp"), this.span(weight, "weight")];
    for (const [r0, rows] of this.rowChunks(N, C, "inp"))
      this.run("rmsnorm", "rmsnorm_forward", "uuf", [rows, C, eps],
        [this.bind(so, r0 * C, rows * C, "out"), this.bind(sr, r0, rows, "rstd"), this.bind(si, r0 * C, rows * C, "inp"), this.whole(sw, "weight")], this.grid(rows));
  }

  rmsnormBackward(dinp: Tensor, dweight: Tensor, dout: Tensor, inp: Tensor, weight: Tensor, rstd: Tensor): void {
    const [N, C] = rmsnormDims(inp, weight, "rmsnormBackward");
    checkSize(dinp, "dinp", inp.size, "inp.size");
    checkSize(dout, "dout", inp.size, "inp.size");
    checkSize(dweight, "dweight", C, "C");
    checkSize(rstd, "rstd", N, "N");
    const [sdi, sdw, sdo, si, sw, sr] = [this.span(dinp, "dinp"), this.span(dweight, "dweight"), this.span(dout, "dout"), this.span(inp, "inp"), this.span(weight, "weight"), this.span(rstd, "rstd")];
    for (const [r0, rows] of this.rowChunks(N, C, "inp")) {
      const bdo = this.bind(sdo, r0 * C, rows * C, "dout");
      const bi = this.bind(si, r0 * C, rows * C, "inp");
      const br = this.bind(sr, r0, rows, "rstd");
      this.run("rmsnorm", "rmsnorm_backward_rows", "uu", [rows, C], [this.bind(sdi, r0 * C, rows * C, "dinp"), bdo, bi, this.whole(sw, "weight"), br], this.grid(rows));
      const blocks = Math.ceil(rows / 256);
      const partial = this.scratch("colsum", blocks * C);
      this.run("rmsnorm", "rmsnorm_dweight_partial", "uu", [rows, C], [this.whole(partial, "partial"), bdo, bi, br], [Math.ceil(C / 64), blocks]);
      this.run("rmsnorm", "rmsnorm_dweight_finish", "uu", [blocks, C], [this.whole(sdw, "dweight"), this.whole(partial, "partial")], [Math.ceil(C / 64)]);
    }
  }


  /** cos (P, hd/2) then sin (P, hd/2), angles formed in double as native/cpu/rope.cpp does. */
  private ropeTable(theta: number, hd: number): Span {
    const P = this.ropePositions, half = hd / 2;
    const key = `${theta}:${hd}`;
    let b = this.ropeTables.get(key);
    if (!b) {
      const tab = new Float32Array(2 * P * half);
      const inv = Array.from({ length: half }, (_, i) => Math.pow(theta, (-2 * i) / hd));
      for (let p = 0; p < P; p++) {
        for (let i = 0; i < half; i++) {
          const a = p * inv[i];
          tab[p * half + i] = Math.cos(a);
          tab[P * half + p * half + i] = Math.sin(a);
        }
      }
      b = this.device.createBuffer({ label: `rope table ${key}`, size: bufferBytes(tab.length), usage: STORAGE(), mappedAtCreation: true });
      new Float32Array(b.getMappedRange(0, tab.byteLength)).set(tab);
      b.unmap();
      this.ropeTables.set(key, b);
    }
    return { buffer: b, off: 0, len: 2 * P * half };
  }

  private rope(out: Tensor, inp: Tensor, pos: Tensor, theta: number, sign: number): void {
    const [N, nh, hd] = ropeDims(inp, pos);
    checkSize(out, "out", inp.size, "inp.size");
    checkFinite(theta, "theta");
    const so = this.span(out, "out");
    const si = this.span(inp, "inp");
    const sp = this.span(pos, "pos", "i32");
    const table = this.whole(this.ropeTable(theta, hd), "rope table");
    const inPlace = so.buffer === si.buffer;
    const half = hd / 2;
    for (const [r0, rows] of this.rowChunks(N, nh * hd, "inp")) {
      const bindings = [this.bind(so, r0 * nh * hd, rows * nh * hd, "out"), table, this.bind(sp, r0, rows, "pos")];
      if (!inPlace) bindings.push(this.bind(si, r0 * nh * hd, rows * nh * hd, "inp"));
      this.run("rope", inPlace ? "rope_inplace" : "rope", "uuuuff", [rows, nh, half, this.ropePositions, theta, sign], bindings, this.grid(Math.ceil((rows * nh * half) / 256)));
    }
  }

  ropeForward(out: Tensor, inp: Tensor, pos: Tensor, theta: number): void {
    this.rope(out, inp, pos, theta, 1);
  }

  ropeBackward(dinp: Tensor, dout: Tensor, pos: Tensor, theta: number): void {
    this.rope(dinp, dout, pos, theta, -1);
  }


  /**
   * Batch chunks [b0, nb] such that each tensor's window (nb * perBatch elements, plus up to 63
   * elements of alignment slack) fits one binding: the attention kernels take element offsets.
   */
  private *batchChunks(B: number, perBatch: number[], what: string): Generator<[number, number]> {
    const biggest = Math.max(...perBatch);
    if (B * biggest <= this.maxElems) {
      yield [0, B];
      return;
    }
    const nb = Math.floor((this.maxElems - 64) / biggest);
    if (nb < 1) throw new RangeError(`webgpu: ${what}: one batch row of ${biggest} elements does not fit the ${this.maxBinding}-byte binding limit`);
    for (let b0 = 0; b0 < B; b0 += nb) yield [b0, Math.min(nb, B - b0)];
  }

  /** A binding of [start, start + count) widened down to the offset alignment, and the element offset of start inside it. */
  private window(s: Span, start: number, count: number, what: string): [GPUBufferBinding, number] {
    const res = (s.off + start) % 64;
    return [this.bind(s, start - res, count + res, what), res];
  }

  attentionForward(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor): void {
    const [B, T, nh, nkv, hd] = attentionDims(q, k);
    checkSize(v, "v", k.size, "k.size");
    checkSize(out, "out", q.size, "q.size");
    checkSize(lse, "lse", B * nh * T, "B*nh*T");
    const [so, sl, sq, sk, sv] = [this.span(out, "out"), this.span(lse, "lse"), this.span(q, "q"), this.span(k, "k"), this.span(v, "v")];
    const [qb, kb, lb] = [T * nh * hd, T * nkv * hd, nh * T];
    for (const [b0, nb] of this.batchChunks(B, [qb, kb, lb], "attention")) {
      const [bo, rq] = this.window(so, b0 * qb, nb * qb, "out");
      const [bq] = this.window(sq, b0 * qb, nb * qb, "q");
      const [bk, rk] = this.window(sk, b0 * kb, nb * kb, "k");
      const [bv] = this.window(sv, b0 * kb, nb * kb, "v");
      const [bl, rl] = this.window(sl, b0 * lb, nb * lb, "lse");
      this.run("attention", "attention_forward", "uuuufuuu", [nb, T, nh, nkv, 1 / Math.sqrt(hd), rq, rk, rl],
        [bo, bl, bq, bk, bv], this.grid(Math.ceil((nb * nh * T) / 64)), { HD: hd });
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
    for (const [b0, nb] of this.batchChunks(B, [qb, kb, lb], "attention")) {
      const [bdq, bdout, bq, bout] = qs.map((s) => this.window(s, b0 * qb, nb * qb, "q-shaped tensor")[0]);
      const [bdk, bdv, bk, bv] = ks.map((s) => this.window(s, b0 * kb, nb * kb, "k-shaped tensor")[0]);
      const rq = (b0 * qb) % 64, rk = (b0 * kb) % 64;
      const [bl, rl] = this.window(sl, b0 * lb, nb * lb, "lse");
      const delta = this.whole(this.scratch("attn_delta", nb * lb), "delta");
      const params = [nb, T, nh, nkv, 1 / Math.sqrt(hd), rq, rk, rl];
      const qGroups = this.grid(Math.ceil((nb * nh * T) / 64));
      this.run("attention", "attention_delta", "uuuufuuu", params, [delta, bdout, bout], qGroups, { HD: hd });
      this.run("attention", "attention_dq", "uuuufuuu", params, [bdq, bdout, bq, bk, bv, bl, delta], qGroups, { HD: hd });
      this.run("attention", "attention_dkdv", "uuuufuuu", params, [bdk, bdv, bdout, bq, bk, bv, bl, delta], this.grid(Math.ceil((nb * nkv * T) / 64)), { HD: hd });
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
    for (const [b0, nb] of this.batchChunks(B, [qb, cb], "attentionDecode")) {
      const [bo, rq] = this.window(so, b0 * qb, nb * qb, "out");
      const [bq] = this.window(sq, b0 * qb, nb * qb, "q");
      const [bk, rc] = this.window(skc, b0 * cb, nb * cb, "kCache");
      const [bv] = this.window(svc, b0 * cb, nb * cb, "vCache");
      const [bp, rp] = this.window(sp, b0, nb, "pos");
      this.run("attention_decode", "attention_decode", "uuuuufuuu", [nb, Tq, S, nh, nkv, 1 / Math.sqrt(hd), rq, rc, rp],
        [bo, bq, bk, bv, bp], this.grid(nb * Tq * nh), { HD: hd, NT });
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
    for (const [b0, nb] of this.batchChunks(B, [S * row, Tq * row], "kvWrite")) {
      const [bc, rc] = this.window(sc, b0 * S * row, nb * S * row, "cache");
      const [bx, rx] = this.window(sx, b0 * Tq * row, nb * Tq * row, "x");
      const [bp, rp] = this.window(sp, b0, nb, "pos");
      this.run("kv_write", "kv_write", "uuuuuuu", [nb, Tq, S, row, rc, rx, rp], [bc, bx, bp], this.grid(Math.ceil((nb * Tq * row) / 256)));
    }
  }

  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
    checkSize(gate, "gate", out.size, "out.size");
    checkSize(up, "up", out.size, "out.size");
    const [so, sg, su] = [this.span(out, "out"), this.span(gate, "gate"), this.span(up, "up")];
    for (const [s, n] of this.chunks(so.len))
      this.run("swiglu", "swiglu_forward", "u", [n], [this.bind(so, s, n, "out"), this.bind(sg, s, n, "gate"), this.bind(su, s, n, "up")], this.grid(Math.ceil(n / 256)));
  }

  swigluBackward(dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor): void {
    const N = dout.size;
    for (const [t, nm] of [[dgate, "dgate"], [dup, "dup"], [gate, "gate"], [up, "up"]] as const) checkSize(t, nm, N, "dout.size");
    const sp = [this.span(dgate, "dgate"), this.span(dup, "dup"), this.span(dout, "dout"), this.span(gate, "gate"), this.span(up, "up")];
    for (const [s, n] of this.chunks(N))
      this.run("swiglu", "swiglu_backward", "u", [n], sp.map((x, i) => this.bind(x, s, n, ["dgate", "dup", "dout", "gate", "up"][i])), this.grid(Math.ceil(n / 256)));
  }

  crossEntropyForward(loss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(targets, "targets", N, "N");
    checkSize(loss, "loss", N, "N");
    const [sl, sx, st] = [this.span(loss, "loss"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.rowChunks(N, V, "logits"))
      this.run("crossentropy", "crossentropy_forward", "uu", [rows, V],
        [this.bind(sl, r0, rows, "loss"), this.bind(sx, r0 * V, rows * V, "logits"), this.bind(st, r0, rows, "targets")], this.grid(rows));
  }

  crossEntropyBackward(dlogits: Tensor, dloss: Tensor, logits: Tensor, targets: Tensor): void {
    const [N, V] = rowsCols(logits);
    checkSize(dlogits, "dlogits", N * V, "N*V");
    checkSize(targets, "targets", N, "N");
    checkSize(dloss, "dloss", N, "N");
    const [sd, sdl, sx, st] = [this.span(dlogits, "dlogits"), this.span(dloss, "dloss"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.rowChunks(N, V, "logits"))
      this.run("crossentropy", "crossentropy_backward", "uu", [rows, V],
        [this.bind(sd, r0 * V, rows * V, "dlogits"), this.bind(sx, r0 * V, rows * V, "logits"), this.bind(st, r0, rows, "targets"), this.bind(sdl, r0, rows, "dloss")], this.grid(rows));
  }

  gatherRows(out: Tensor, inp: Tensor, idx: Tensor): void {
    const [N, C] = rowsCols(inp);
    const M = idx.size;
    checkSize(out, "out", M * C, "M*C");
    const [so, si, sx] = [this.span(out, "out"), this.span(inp, "inp"), this.span(idx, "idx", "i32")];
    let first = 1;
    for (const [r0, rows] of this.rowChunks(N, C, "inp", false)) {
      this.run("gather", "gather_rows", "uuuuuu", [M, C, N, r0, rows, first],
        [this.whole(so, "out"), this.bind(si, r0 * C, rows * C, "inp"), this.whole(sx, "idx")], this.grid(Math.ceil((M * C) / 256)));
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
    for (const [s, cnt] of this.chunks(n)) {
      values[0] = cnt;
      this.run("adamw", "adamw", "ufffffff", values, sp.map((x, i) => this.bind(x, s, cnt, ["param", "m", "v", "grad"][i])), this.grid(Math.ceil(cnt / 256)));
    }
  }

  // ---- fused kernels ------------------------------------------------------------------
  logprobFromLogits(logprob: Tensor, entropy: Tensor, logits: Tensor, targets: Tensor, temperature: number): void {
    const [N, V] = logprobFromLogitsDims(logprob, entropy, logits, targets, temperature);
    const [sl, se, sx, st] = [this.span(logprob, "logprob"), this.span(entropy, "entropy"), this.span(logits, "logits"), this.span(targets, "targets", "i32")];
    for (const [r0, rows] of this.rowChunks(N, V, "logits"))
      this.run("logprob_from_logits", "logprob_from_logits", "uuf", [rows, V, 1 / temperature],
        [this.bind(sl, r0, rows, "logprob"), this.bind(se, r0, rows, "entropy"), this.bind(sx, r0 * V, rows * V, "logits"), this.bind(st, r0, rows, "targets")], this.grid(rows));
  }

  sample(ids: Tensor, logits: Tensor, seeds: Uint32Array, o: SampleOptions): void {
    const [B, V] = sampleDims(ids, logits, seeds, o);
    const [si, sx] = [this.span(ids, "ids", "i32"), this.span(logits, "logits")];
    if (B === 0) return;
    const greedy = o.greedy || !(o.temperature > 0) ? 1 : 0;
    // The CPU's uniform for each seed, so seeded draws agree across backends.
    const u = this.scratch("sample_u", B);
    this.flush(); // the writeBuffer below must not overtake an earlier, unsubmitted sample
    this.device.queue.writeBuffer(u.buffer, 0, Float32Array.from(seeds, sampleUniform));
    for (const [r0, rows] of this.rowChunks(B, V, "logits")) {
      const q = this.scratch("sample_q", rows * V);
      this.run("sample", "sample", "uuuufffu", [rows, V, greedy, o.topK, greedy ? 1 : 1 / o.temperature, o.topP, o.minP, 31],
        [this.bind(si, r0, rows, "ids"), this.whole(q, "q"), this.bind(sx, r0 * V, rows * V, "logits"), this.bind(u, r0, rows, "u")], this.grid(rows));
    }
  }

  /** Vocabulary chunk for the fused linear log-prob: the (N, Vc) logits scratch and the weight rows fit a binding. */
  private vocabChunk(N: number, H: number, V: number): number {
    const zBudget = Math.min(this.maxElems, 8 << 20);
    let vc = Math.floor(zBudget / Math.max(N, 1) / 64) * 64;
    vc = Math.min(vc, Math.floor(this.maxElems / H / 64) * 64);
    if (vc < 64) throw new RangeError(`webgpu: linear log-prob with N=${N}, H=${H} does not fit the ${this.maxBinding}-byte binding limit; split the batch`);
    return Math.min(vc, V);
  }

  linearLogprobForward(logprob: Tensor, entropy: Tensor, lse: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobForward", hidden, weight, [[logprob, "logprob"], [entropy, "entropy"], [lse, "lse"], [targets, "targets"]], temperature);
    const [sl, se, sls, sh, sw, st] = [this.span(logprob, "logprob"), this.span(entropy, "entropy"), this.span(lse, "lse"), this.span(hidden, "hidden"), this.span(weight, "weight"), this.span(targets, "targets", "i32")];
    if (N === 0) return;
    const Vc = this.vocabChunk(N, H, V);
    const z = this.scratch("ll_z", N * Vc);
    const state = this.whole(this.scratch("ll_state", N * 4), "state");
    const invT = 1 / temperature;
    for (let v0 = 0; v0 < V; v0 += Vc) {
      const vc = Math.min(Vc, V - v0);
      const zs: Span = { buffer: z.buffer, off: 0, len: N * vc };
      this.mm(zs, sh, { buffer: sw.buffer, off: v0 * H, len: vc * H }, N, vc, H, false, true, false, invT);
      this.run("linear_logprob", "ll_update", "uuuufu", [N, vc, v0, v0 === 0 ? 1 : 0, invT, V], [state, this.whole(zs, "z"), this.whole(st, "targets")], this.grid(N));
    }
    this.run("linear_logprob", "ll_finalize", "uuuufu", [N, 0, 0, 0, invT, V],
      [this.whole(sl, "logprob"), this.whole(se, "entropy"), this.whole(sls, "lse"), state, this.whole(st, "targets")], this.grid(Math.ceil(N / 256)));
  }

  linearLogprobBackward(dhidden: Tensor, dweight: Tensor, dlogprob: Tensor, dentropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, lse: Tensor, entropy: Tensor, temperature: number): void {
    const [N, H, V] = linearLogprobDims("linearLogprobBackward", hidden, weight, [[dlogprob, "dlogprob"], [dentropy, "dentropy"], [lse, "lse"], [entropy, "entropy"], [targets, "targets"]], temperature);
    checkSize(dhidden, "dhidden", N * H, "N*H");
    checkSize(dweight, "dweight", V * H, "V*H");
    const sdh = this.span(dhidden, "dhidden");
    const sdw = this.span(dweight, "dweight");
    const sh = this.span(hidden, "hidden");
    const sw = this.span(weight, "weight");
    const rowBindings = [this.span(targets, "targets", "i32"), this.span(lse, "lse"), this.span(entropy, "entropy"), this.span(dlogprob, "dlogprob"), this.span(dentropy, "dentropy")].map((s) => this.whole(s, "per-token input"));
    if (N === 0) return;
    const Vc = this.vocabChunk(N, H, V);
    const z = this.scratch("ll_z", N * Vc);
    const invT = 1 / temperature;
    for (let v0 = 0; v0 < V; v0 += Vc) {
      const vc = Math.min(Vc, V - v0);
      const zs: Span = { buffer: z.buffer, off: 0, len: N * vc };
      const wc: Span = { buffer: sw.buffer, off: v0 * H, len: vc * H };
      this.mm(zs, sh, wc, N, vc, H, false, true, false, invT);
      this.run("linear_logprob", "ll_dz", "uuuufu", [N, vc, v0, 0, invT, V], [this.whole(zs, "dz"), ...rowBindings], this.grid(Math.ceil((N * vc) / 256)));
      this.mm(sdh, zs, wc, N, H, vc, false, false, v0 > 0, 1);
      this.mm({ buffer: sdw.buffer, off: v0 * H, len: vc * H }, zs, sh, vc, H, N, true, false, true, 1);
    }
    if (V === 0) this.fill(dhidden, 0);
  }

  grpoLoss(dlogprob: Tensor, dentropy: Tensor, stats: Tensor, logprob: Tensor, oldLogprob: Tensor, refLogprob: Tensor | null, rolloutLogprob: Tensor | null, entropy: Tensor | null, advantages: Tensor, mask: Tensor, o: GrpoLossOptions): void {
    grpoLossDims(dlogprob, dentropy, stats, logprob, oldLogprob, refLogprob, rolloutLogprob, entropy, advantages, mask, o);
    const b = (t: Tensor, n: string) => this.whole(this.span(t, n), n);
    // Optional inputs: bind the logprob in their place and tell the kernel they are absent.
    const opt = (t: Tensor | null, n: string) => (t === null ? b(logprob, "logprob") : b(t, n));
    this.run("grpo_loss", "grpo_loss", "uuffffuffuuuuu",
      [o.B, o.T, o.epsLow, o.epsHigh, o.dualClip, o.beta, KL_CODE[o.kl], o.entropyCoef, o.tisCap, AGG_CODE[o.aggregation], o.maxCompletionLength ?? o.T,
        refLogprob ? 1 : 0, rolloutLogprob ? 1 : 0, entropy ? 1 : 0],
      [b(dlogprob, "dlogprob"), b(dentropy, "dentropy"), b(stats, "stats"), b(logprob, "logprob"), b(oldLogprob, "oldLogprob"),
        opt(refLogprob, "refLogprob"), opt(rolloutLogprob, "rolloutLogprob"), opt(entropy, "entropy"), b(advantages, "advantages"), b(mask, "mask")], [1]);
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
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
