// Deterministic seed derivation: every random choice of a run is a pure function of
// (run seed, step, index, purpose), so a resumed run draws exactly what the uninterrupted
// run would have drawn, with no RNG stream to save.

/** One murmur3 round: folds the 32-bit word w into the hash state h. */
export function murmurRound(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finaliser: every input bit affects every output bit; returns a uint32. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Mixes integers into one 32-bit seed (murmur3 per part), so derived seeds do not collide. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  // Seeds may exceed 32 bits: fold the high word in too.
  for (const p of parts) h = murmurRound(murmurRound(h, p >>> 0), Math.floor(p / 4294967296) >>> 0);
  return fmix32(h);
}

/** Uniform in [0, 1) from the mixed parts. */
export function uniform(...parts: number[]): number {
  return mixSeed(...parts) / 4294967296;
}

/** Purposes, so different uses of the same (seed, step) never collide. */
export const PURPOSE = { prompt: 1, sample: 2, anchor: 3, sft: 4, eval: 5, shuffle: 6, init: 7, pairs: 8 } as const;
