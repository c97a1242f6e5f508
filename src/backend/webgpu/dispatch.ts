// How work reaches the GPU: the submission and binding machinery under the WebGPU backend's
// ops (index.ts), which only say what to dispatch.
//
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
import { bufferBytes } from "./tensor.js";
import { PipelineCache, type Defines } from "./pipelines.js";

/** A window of a buffer, in f32/i32 elements. */
export interface Span {
  buffer: GPUBuffer;
  off: number;
  len: number;
}

const RING_SLOTS = 128;
const SLOT_BYTES = 256;
export const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class Dispatcher {
  readonly pipelines: PipelineCache;
  private readonly layouts = new Map<GPUComputePipeline, GPUBindGroupLayout>();
  /** Largest storage binding, in bytes. */
  readonly maxBinding: number;
  /** Largest window in elements, a multiple of 64. */
  readonly maxElems: number;
  private readonly offsetAlign: number;

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
  private readonly constants = new Map<string, Span>();
  private errors: string[] = [];
  private lost: string | null = null;
  destroyed = false;

  constructor(
    readonly device: GPUDevice,
    maxBindingBytes?: number,
  ) {
    this.pipelines = new PipelineCache(device);
    const limit = device.limits.maxStorageBufferBindingSize;
    this.maxBinding = Math.min(limit, maxBindingBytes ?? limit);
    this.maxElems = Math.floor(this.maxBinding / 4 / 64) * 64;
    if (this.maxElems < 64) throw new RangeError(`webgpu: maxBindingBytes ${this.maxBinding} is too small`);
    this.offsetAlign = device.limits.minStorageBufferOffsetAlignment;
    if (256 % this.offsetAlign !== 0) throw new Error(`webgpu: storage offset alignment ${this.offsetAlign} is not supported`);
    this.ring = device.createBuffer({ label: "uniform ring", size: RING_SLOTS * SLOT_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(ev.error.message);
    };
    void device.lost.then((info) => {
      if (!this.destroyed) this.lost = info.message || String(info.reason);
    });
  }

  /** Submits the pending work (if any) and frees buffers that were waiting for it. */
  flush(): void {
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
  enc(): GPUCommandEncoder {
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
  run(file: string, entry: string, types: string, values: readonly number[], bindings: GPUBufferBinding[], groups: readonly number[], defines?: Defines): void {
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
  grid(n: number): [number, number] {
    if (n <= 65535) return [n, 1];
    const y = Math.ceil(n / 65535);
    return [Math.ceil(n / y), y];
  }

  bind(s: Span, start: number, count: number, what: string): GPUBufferBinding {
    const offset = (s.off + start) * 4;
    if (offset % this.offsetAlign !== 0) throw new Error(`webgpu internal error: ${what} window at byte ${offset} is not aligned to ${this.offsetAlign}`);
    const size = Math.max(1, count) * 4;
    if (size > this.maxBinding)
      throw new RangeError(`webgpu: ${what} needs a ${size}-byte storage binding, over this device's limit of ${this.maxBinding} bytes (this op cannot split it)`);
    return { buffer: s.buffer, offset, size };
  }

  whole(s: Span, what: string): GPUBufferBinding {
    return this.bind(s, 0, s.len, what);
  }

    /** Scratch buffer reused across ops (the GPU runs them in order, so sharing is safe). */
  scratch(key: string, elements: number): Span {
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
  *chunks(n: number): Generator<[number, number]> {
    for (let s = 0; s < n; s += this.maxElems) yield [s, Math.min(this.maxElems, n - s)];
  }

  /** [firstRow, rows] chunks of a (rows, rowLen) matrix that fit one binding, each starting 256-byte aligned. */
  *rowChunks(rows: number, rowLen: number, what: string, perRowBindings = true): Generator<[number, number]> {
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

  checkErrors(): void {
    if (this.lost) throw new Error(`webgpu: device lost: ${this.lost}`);
    if (this.errors.length) {
      const msg = this.errors.join("\n");
      this.errors = [];
      throw new Error(`webgpu: ${msg}`);
    }
  }


  /**
   * Batch chunks [b0, nb] such that each tensor's window (nb * perBatch elements, plus up to 63
   * elements of alignment slack) fits one binding: the attention kernels take element offsets.
   */
  *batchChunks(B: number, perBatch: number[], what: string): Generator<[number, number]> {
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
  window(s: Span, start: number, count: number, what: string): [GPUBufferBinding, number] {
    const res = (s.off + start) % 64;
    return [this.bind(s, start - res, count + res, what), res];
  }

  /** A read-only table made once per key and kept for the device's life (e.g. RoPE's cos/sin). */
  constant(key: string, make: () => Float32Array): Span {
    let s = this.constants.get(key);
    if (!s) {
      const tab = make();
      const buffer = this.device.createBuffer({ label: key, size: bufferBytes(tab.length), usage: STORAGE(), mappedAtCreation: true });
      new Float32Array(buffer.getMappedRange(0, tab.byteLength)).set(tab);
      buffer.unmap();
      this.constants.set(key, (s = { buffer, off: 0, len: tab.length }));
    }
    return s;
  }

  /** A buffer no longer needed: destroyed now, or after pending work that may use it is submitted. */
  release(buffer: GPUBuffer): void {
    if (this.encoder) this.toDestroy.push(buffer);
    else buffer.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    for (const b of this.scratchBuffers.values()) b.destroy();
    for (const c of this.constants.values()) c.buffer.destroy();
    this.scratchBuffers.clear();
    this.constants.clear();
    this.ring.destroy();
    this.device.destroy();
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
