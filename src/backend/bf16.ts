// bf16 on the host: the upper 16 bits of an f32. Rounding is to nearest, ties to even (torch's
// .to(torch.bfloat16)), NaN stays NaN; widening back to f32 is exact. The C++ side has the same
// two conversions in native/cpu/bf16.h.

/** bf16 bit patterns of f32 values, rounded to nearest even. */
export function f32ToBf16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const bits = u[i];
    if ((bits & 0x7fffffff) > 0x7f800000) out[i] = (bits >>> 16) | 0x40;
    else out[i] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** f32 values of bf16 bit patterns (exact). */
export function bf16BitsToF32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return out;
}

/** x rounded to the nearest bf16 value, kept in f32 (what a bf16-stored weight computes with). */
export function roundToBf16(x: Float32Array): Float32Array {
  return bf16BitsToF32(f32ToBf16Bits(x));
}
