// Seeded pseudo-random numbers. Two streams share one set of draws (Random):
// - Rng: xoshiro128** (Blackman & Vigna, 2018) seeded through splitmix32, 53-bit uniforms and
//   normals; its whole state is four uint32 words plus the cached second normal of Box-Muller,
//   so a checkpoint can save and restore it and continue the exact same stream.
// - Mulberry32: one uint32 of state, 32-bit uniforms. The task generators' stream (committed
//   results name generated items, so it never changes) and the tests' data.
// 32-bit arithmetic keeps both exact in JS numbers (Math.imul, >>> 0) and fast.

/** Draws built on a uniform [0, 1) source. */
export abstract class Random {
  /** Uniform in [0, 1). */
  abstract uniform(): number;

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.uniform() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.uniform() * items.length)]!;
  }

  /** Picks by non-negative weights. */
  weighted<T>(items: readonly { item: T; weight: number }[]): T {
    const total = items.reduce((s, x) => s + x.weight, 0);
    if (!(total > 0)) throw new RangeError("weighted pick needs a positive total weight");
    let r = this.uniform() * total;
    for (const x of items) {
      r -= x.weight;
      if (r < 0) return x.item;
    }
    return items[items.length - 1]!.item;
  }

  /** Fisher-Yates, in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** mulberry32 (Tommy Ettinger): tiny and fast; plenty for choosing premises and test data. */
export class Mulberry32 extends Random {
  private state: number;

  constructor(seed: number) {
    super();
    this.state = seed >>> 0;
  }

  uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** A mulberry32 stream as a function, for tests' data: mulberry32(seed)() is in [0, 1). */
export function mulberry32(seed: number): () => number {
  const r = new Mulberry32(seed);
  return () => r.uniform();
}

/** Serializable RNG state (JSON-safe). */
export interface RngState {
  /** xoshiro128** words, each a uint32, not all zero. */
  s: [number, number, number, number];
  /** The spare standard normal from the last Box-Muller pair, or null. */
  spareNormal: number | null;
}

/** splitmix32 step: a well-mixed uint32 from a counter; used only to expand seeds. */
function splitmix32(x: number): [next: number, out: number] {
  const next = (x + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97) >>> 0;
  return [next, (z ^ (z >>> 15)) >>> 0];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Rng extends Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /**
   * @param seed any finite number; integers up to 2^53 are mixed in full (low and high words),
   *   so nearby seeds give unrelated streams.
   */
  constructor(seed: number) {
    super();
    if (!Number.isFinite(seed)) throw new RangeError(`Rng seed must be a finite number, got ${seed}`);
    const lo = Math.trunc(seed) >>> 0;
    const hi = Math.trunc(seed / 4294967296) >>> 0;
    let x = lo ^ Math.imul(hi, 0x85ebca6b);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(x);
      x = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero is a fixed point
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  getState(): RngState {
    return { s: [this.s0, this.s1, this.s2, this.s3], spareNormal: this.spare };
  }

  setState(state: RngState): void {
    const s = state?.s;
    if (!Array.isArray(s) || s.length !== 4 || !s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new TypeError("RngState.s must be four uint32 integers");
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new RangeError("RngState.s must not be all zero");
    const spare = state.spareNormal;
    if (spare !== null && !(typeof spare === "number" && Number.isFinite(spare))) {
      throw new TypeError("RngState.spareNormal must be a finite number or null");
    }
    [this.s0, this.s1, this.s2, this.s3] = s;
    this.spare = spare;
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias (rejection sampling on whole words). */
  below(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
      throw new RangeError(`Rng.below(n) needs an integer 1 <= n <= 2^32, got ${n}`);
    }
    const limit = 0x100000000 - (0x100000000 % n); // largest multiple of n that fits
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal draw (Box-Muller; the pair's second value is cached in the state). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.uniform(); // log(0) guard
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Fill `out` with N(mean, std^2) draws. */
  fillNormal(out: Float32Array | Float64Array, mean = 0, std = 1): void {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
  }

  /** An independent generator derived from this one (advances this stream by four words). */
  fork(): Rng {
    const r = new Rng(0);
    r.setState({ s: [this.nextU32(), this.nextU32(), this.nextU32(), (this.nextU32() | 1) >>> 0], spareNormal: null });
    return r;
  }
}
