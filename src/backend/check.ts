// Argument validation shared by all backends, so every backend rejects a bad call with the
// same message: TypeError for the wrong kind of thing, RangeError for a wrong size.
import type { Backend, DType, MatmulOptions, Tensor } from "./backend.js";

export function checkTensor(t: Tensor | null | undefined, name: string, backend: Backend, dtype: DType = "f32"): Tensor {
  if (!t || typeof t !== "object" || !("shape" in t)) throw new TypeError(`${name} must be a Tensor`);
  if (t.disposed) throw new TypeError(`${name} was disposed`);
  if (t.backend !== backend) throw new TypeError(`${name} lives on backend ${t.backend.name}, expected ${backend.name}`);
  if (t.dtype !== dtype) throw new TypeError(`${name} must be ${dtype}, got ${t.dtype}`);
  return t;
}

/** Checks the element count (shapes are free to be viewed differently, e.g. (N, nh, hd) as (N*nh, hd)). */
export function checkSize(t: Tensor, name: string, size: number, what: string): void {
  if (t.size !== size) throw new RangeError(`${name} has ${t.size} elements (shape [${t.shape.join(", ")}]), expected ${size} = ${what}`);
}

export function checkInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v)) throw new TypeError(`${name} must be an integer, got ${v}`);
  if (v < min) throw new RangeError(`${name} must be >= ${min}, got ${v}`);
  return v;
}

export function checkFinite(v: number, name: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`${name} must be a finite number, got ${v}`);
  return v;
}

/** Last dimension of a tensor, and the product of the others. */
export function rowsCols(t: Tensor): [number, number] {
  const c = t.shape[t.shape.length - 1] ?? 1;
  // Product of the leading dims (not size / c): a (3, 0) tensor has 3 rows of 0 columns.
  let r = 1;
  for (let i = 0; i < t.shape.length - 1; i++) r *= t.shape[i];
  return [r, c];
}

/** matmul: out (M, N) (+)= alpha * op(a) (M, K) @ op(b) (K, N); the checked dimensions. */
export function matmulDims(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions) {
  const { transA = false, transB = false, accumulate = false, alpha = 1 } = opts;
  const [M, N] = rowsCols(out);
  if (a.shape.length < 2 || b.shape.length < 2) throw new RangeError("matmul: a and b must be at least 2-D");
  const [ar, ac] = rowsCols(a);
  const [br, bc] = rowsCols(b);
  const aM = transA ? ac : ar, K = transA ? ar : ac;
  const bK = transB ? bc : br, bN = transB ? br : bc;
  if (aM !== M || bN !== N || bK !== K)
    throw new RangeError(`matmul: shapes do not agree: out (${M}, ${N}), op(a) (${aM}, ${K}), op(b) (${bK}, ${bN})`);
  return { M, N, K, transA, transB, accumulate, alpha: checkFinite(alpha, "alpha") };
}

/** rope: inp (N, nh, hd) or (N*nh, hd) with pos (N) -> [N, nh, hd]. */
export function ropeDims(inp: Tensor, pos: Tensor): [number, number, number] {
  if (inp.shape.length < 2) throw new RangeError("rope: inp must be (N, nh, hd) or (N*nh, hd)");
  const hd = inp.shape[inp.shape.length - 1];
  if (hd % 2 !== 0) throw new RangeError(`rope: head dim ${hd} must be even`);
  const N = pos.size;
  const nh = inp.size / (N * hd);
  if (!Number.isInteger(nh)) throw new RangeError(`rope: inp size ${inp.size} is not N*nh*hd with N=${N}, hd=${hd}`);
  return [N, nh, hd];
}

/** attention: q (B, T, nh, hd), k (B, T, nkv, hd) -> [B, T, nh, nkv, hd]. */
export function attentionDims(q: Tensor, k: Tensor): [number, number, number, number, number] {
  if (q.shape.length !== 4 || k.shape.length !== 4) throw new RangeError("attention: q and k must be 4-D (B, T, heads, hd)");
  const [B, T, nh, hd] = q.shape;
  const nkv = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== T || k.shape[3] !== hd) throw new RangeError(`attention: k shape [${k.shape}] does not match q [${q.shape}]`);
  if (nkv === 0 || nh % nkv !== 0) throw new RangeError(`attention: query heads ${nh} must be a multiple of kv heads ${nkv}`);
  return [B, T, nh, nkv, hd];
}

/** rmsnorm: inp (N, C) viewed against weight (C) -> [N, C]. */
export function rmsnormDims(inp: Tensor, weight: Tensor, op: string): [number, number] {
  const C = weight.size;
  const N = inp.size / C;
  if (!Number.isInteger(N)) throw new RangeError(`${op}: inp size ${inp.size} is not a multiple of weight size ${C}`);
  return [N, C];
}
