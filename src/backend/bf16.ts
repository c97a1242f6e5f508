// bf16 on the host: the upper 16 bits of an f32. Rounding is to nearest, ties to even (torch's
// .to(torch.bfloat16)), NaN stays NaN (quieted), overflow rounds to infinity; widening back to
// f32 is exact. The one copy of these conversions: safetensors files (src/model/safetensors.ts)
// and bf16 tensors of every backend use it; the C++ side has the same two in native/cpu/bf16.h.

/** dst[i] = src[i] widened to f32 (exact). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

/** dst[i] = src[i] rounded to bf16 bits, nearest even. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array): void {
  const inp = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i]!;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    if (abs > 0x7f800000) {
      dst[i] = sign | 0x7fc0 | ((abs >>> 16) & 0x3f);
    } else {
      dst[i] = sign | ((abs + 0x7fff + ((abs >>> 16) & 1)) >>> 16);
    }
  }
}

/** bf16 bit patterns of f32 values, rounded to nearest even. */
export function f32ToBf16Bits(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  f32ToBf16(x, out);
  return out;
}

/** f32 values of bf16 bit patterns (exact). */
export function bf16BitsToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  bf16ToF32(h, out);
  return out;
}

/** x rounded to the nearest bf16 value, kept in f32 (what a bf16-stored weight computes with). */
export function roundToBf16(x: Float32Array): Float32Array {
  return bf16BitsToF32(f32ToBf16Bits(x));
}
