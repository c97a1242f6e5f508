// CPU backend: tensors are host typed arrays, ops call the C++ addon (native/cpu) directly.
// It is the reference every other backend is tested against.
import {
  numel,
  type Backend,
  type DType,
  type Tensor,
} from "./backend.js";
import { checkInt, checkTensor } from "./check.js";
import { AddonBackend } from "./addon-backend.js";
import { ensureGemmSelected } from "./gemm.js";
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

export class CpuBackend extends AddonBackend<Float32Array, Int32Array> implements Backend {
  readonly name = "cpu" as const;
  readonly native: NativeAddon;
  protected readonly ops: NativeAddon;

  constructor(opts: { threads?: number } = {}) {
    super();
    this.native = loadAddon();
    this.ops = this.native;
    if (opts.threads !== undefined) this.native.setThreads(checkInt(opts.threads, "threads"));
    ensureGemmSelected(this.native);
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
  protected f(t: Tensor, name: string): Float32Array {
    return this.arr(t, name, "f32") as Float32Array;
  }
  protected i(t: Tensor, name: string): Int32Array {
    return this.arr(t, name, "i32") as Int32Array;
  }
}
