// CPU backend: tensors are host typed arrays, ops call the C++ addon (native/cpu) directly.
// It is the reference every other backend is tested against. bf16 tensors (frozen weights)
// hold their bits in a Uint16Array.
import {
  numel,
  type Backend,
  type DType,
  type Tensor,
} from "./backend.js";
import { bf16BitsToF32, f32ToBf16Bits } from "./bf16.js";
import { checkInt, checkTensor, checkWeight, uploadDtype } from "./check.js";
import { AddonBackend } from "./addon-backend.js";
import { ensureGemmSelected } from "./gemm.js";
import { loadAddon, type NativeAddon } from "./native.js";

type CpuData = Float32Array | Int32Array | Uint16Array;

function allocate(dtype: DType, n: number): CpuData {
  return dtype === "f32" ? new Float32Array(n) : dtype === "bf16" ? new Uint16Array(n) : new Int32Array(n);
}

export class CpuTensor implements Tensor {
  readonly size: number;
  private _data: CpuData | null;
  constructor(
    readonly backend: CpuBackend,
    readonly shape: readonly number[],
    readonly dtype: DType,
    data?: CpuData,
  ) {
    this.size = numel(shape);
    this._data = data ?? allocate(dtype, this.size);
    if (this._data.length !== this.size) throw new RangeError(`data has ${this._data.length} elements, shape [${shape.join(", ")}] needs ${this.size}`);
  }
  get disposed(): boolean {
    return this._data === null;
  }
  get bytes(): number {
    return this._data ? this._data.byteLength : 0;
  }
  /** The backing array (no copy; bf16: the bits). Valid until dispose(). */
  get data(): CpuData {
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

/**
 * ANVIL_SIMD picks the vector ISA of the softmax and sampling loops (native/cpu/softmax_kernels.h);
 * the addon reads it at load and falls back to the widest on a value it cannot use, so a typo
 * is reported here instead of being ignored.
 */
function checkSimdEnv(native: NativeAddon): void {
  const want = (process.env.ANVIL_SIMD ?? "").trim();
  if (!want || want === "auto") return;
  const { simdIsas } = native.buildInfo();
  if (!simdIsas.includes(want)) throw new RangeError(`ANVIL_SIMD=${want} is not usable here; use one of: auto, ${simdIsas.join(", ")}`);
}

export class CpuBackend extends AddonBackend<Float32Array, Int32Array, Float32Array | Uint16Array> implements Backend {
  readonly name = "cpu" as const;
  readonly native: NativeAddon;
  protected readonly ops: NativeAddon;
  protected override readonly onePassFrozenHead = true;

  constructor(opts: { threads?: number } = {}) {
    super();
    this.native = loadAddon();
    this.ops = this.native;
    if (opts.threads !== undefined) this.native.setThreads(checkInt(opts.threads, "threads"));
    ensureGemmSelected(this.native);
    checkSimdEnv(this.native);
  }

  // ---- memory -------------------------------------------------------------------------
  zeros(shape: readonly number[], dtype: DType = "f32"): CpuTensor {
    for (const d of shape) checkInt(d, "shape dimension", 0);
    return new CpuTensor(this, [...shape], dtype);
  }
  upload(data: Float32Array | Int32Array, shape: readonly number[], dtype?: DType): CpuTensor {
    const kind = uploadDtype(data, dtype);
    return new CpuTensor(this, [...shape], kind, kind === "bf16" ? f32ToBf16Bits(data as Float32Array) : data.slice());
  }
  async read(t: Tensor): Promise<Float32Array | Int32Array> {
    return this.readSync(t);
  }
  /** Synchronous host copy: the CPU backend can afford it. */
  readSync(t: Tensor): Float32Array | Int32Array {
    const data = this.arr(t, "t", t.dtype);
    return data instanceof Uint16Array ? bf16BitsToF32(data) : data.slice();
  }
  write(t: Tensor, data: Float32Array | Int32Array, offset = 0): void {
    const dst = this.arr(t, "t", t.dtype);
    if (offset < 0 || offset + data.length > dst.length) throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in ${dst.length}`);
    if (dst instanceof Uint16Array) {
      if (!(data instanceof Float32Array)) throw new TypeError("write: a bf16 tensor is written from a Float32Array");
      dst.set(f32ToBf16Bits(data), offset);
    } else {
      dst.set(data, offset);
    }
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
    const data = this.arr(t, "t", t.dtype);
    data.fill(data instanceof Uint16Array ? f32ToBf16Bits(Float32Array.of(value))[0] : value);
  }
  async sync(): Promise<void> {}
  destroy(): void {}

  private arr(t: Tensor, name: string, dtype: DType = "f32"): CpuData {
    return (checkTensor(t, name, this, dtype) as CpuTensor).data;
  }
  protected f(t: Tensor, name: string): Float32Array {
    return this.arr(t, name, "f32") as Float32Array;
  }
  protected i(t: Tensor, name: string): Int32Array {
    return this.arr(t, name, "i32") as Int32Array;
  }
  protected w(t: Tensor, name: string): Float32Array | Uint16Array {
    return (checkWeight(t, name, this) as CpuTensor).data as Float32Array | Uint16Array;
  }
}
