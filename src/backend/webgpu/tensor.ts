// GPUBuffer-backed tensors. The buffer is sized to a multiple of 16 bytes (at least 16) so
// empty tensors and odd element counts still make valid bindings.
import { numel, type DType, type Tensor } from "../backend.js";

/** What a tensor needs from its backend: a way to give its buffer back safely. */
export interface BufferOwner {
  readonly name: "webgpu";
  releaseBuffer(buffer: GPUBuffer): void;
}

export class GpuTensor implements Tensor {
  readonly size: number;
  private _buffer: GPUBuffer | null;

  constructor(
    readonly backend: BufferOwner & Tensor["backend"],
    readonly shape: readonly number[],
    readonly dtype: DType,
    buffer: GPUBuffer,
    /** Set for a Backend.view(): the tensor that owns the buffer (kept alive by this reference). */
    readonly base: GpuTensor | null = null,
  ) {
    this.size = numel(shape);
    this._buffer = buffer;
  }

  get disposed(): boolean {
    return this._buffer === null || (this.base !== null && this.base.disposed);
  }

  get bytes(): number {
    return (this.base ?? this).buffer.size;
  }

  get buffer(): GPUBuffer {
    if (!this._buffer || (this.base && this.base.disposed)) throw new TypeError("tensor was disposed");
    return this._buffer;
  }

  dispose(): void {
    if (!this._buffer) return;
    if (!this.base) this.backend.releaseBuffer(this._buffer); // a view never frees its base's buffer
    this._buffer = null;
  }
}

export function bufferBytes(elements: number): number {
  return Math.max(16, Math.ceil((elements * 4) / 16) * 16);
}
