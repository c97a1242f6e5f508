// CUDA backend: tensors are device allocations (cudaMalloc) named by their address, ops call
// the cuda_* functions of the addon, which forward to libanvil_cuda.so (native/cuda/*.cu),
// loaded on first use. Kernels run in order on one stream: op calls return once the work is
// enqueued; read() and sync() wait for it. Validation is the CPU backend's, so both reject a
// bad call with the same message. One CudaBackend (one device, one thread) per process: the
// kernels share a scratch workspace. Kernels cannot throw: an out-of-range id or cache position
// zeroes/skips its row and is reported by the next sync().
import {
  numel,
  type Backend,
  type DType,
  type Tensor,
} from "./backend.js";
import { checkInt, checkTensor } from "./check.js";
import { ADDON_OPS, AddonBackend, type AddonOps } from "./addon-backend.js";
import { loadAddon, type CudaInfo, type NativeAddon } from "./native.js";

type P = bigint;

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
}

/** The ops as the addon exports them: the AddonOps names prefixed by cuda_, on device pointers. */
export type CudaOpExports = { [K in keyof AddonOps<P, P> as `cuda_${K}`]: AddonOps<P, P>[K] };

type CudaAddon = NativeAddon & CudaOps & CudaOpExports;

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

const F32_BITS = new Uint32Array(1);
const F32_VIEW = new Float32Array(F32_BITS.buffer);

export class CudaBackend extends AddonBackend<bigint, bigint> implements Backend {
  readonly name = "cuda" as const;
  protected readonly ops: AddonOps<bigint, bigint>;

  private constructor(
    readonly addon: CudaAddon,
    readonly device: number,
    readonly deviceName: string,
  ) {
    super();
    const table: Record<string, unknown> = {};
    for (const op of ADDON_OPS) {
      const fn = addon[`cuda_${op}`] as (...args: unknown[]) => void;
      table[op] = (...args: unknown[]) => fn.apply(addon, args);
    }
    this.ops = table as unknown as AddonOps<bigint, bigint>;
  }

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
  protected f(t: Tensor, name: string): bigint {
    return this.p(t, name);
  }
  protected i(t: Tensor, name: string): bigint {
    return this.p(t, name, "i32");
  }
}
