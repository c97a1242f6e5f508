// A weight operand bound as raw 32-bit words: f32, or bf16 (frozen weights) packed two per word,
// element 2j in the low half of word j. bf16 widens to f32 exactly (a 16-bit shift), so the
// kernels compute in f32 on the same values as the cpu and cuda backends.
fn weight_from_word(word: u32, i: u32, bf16: u32) -> f32 {
  if (bf16 == 0u) { return bitcast<f32>(word); }
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
