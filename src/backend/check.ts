// Argument validation shared by all backends, so every backend rejects a bad call with the
// same message: TypeError for the wrong kind of thing, RangeError for a wrong size.
import type { Backend, DType, Tensor } from "./backend.js";

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
