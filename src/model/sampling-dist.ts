// The distribution the fused sampler actually draws from, on the host: log of the probability
// mass its truncation keeps. Truncated importance sampling (TIS) weighs a token by
// p_trainer(x) / q_sampler(x); both must be log-probs of the same token under the same
// temperature, and q must include the renormalisation by the kept mass:
//   log q(x) = log softmax(z / T)_x - log Z_kept,   Z_kept = sum of softmax(z / T) over the kept set.
// Semantics follow native/include/anvil/sample.h (top-k with ties kept, then top-p on the
// survivors with ties kept, then min-p; the kept set is the intersection).
// O(V log V) per row (a sort): used only when a truncation is on.
import type { SampleOptions } from "../backend/backend.js";

/** Whether `opts` truncates the distribution (top-k, top-p or min-p), for vocabulary size V. */
export function truncates(opts: SampleOptions, V: number): boolean {
  if (opts.greedy || opts.temperature <= 0) return false;
  return (opts.topK > 0 && opts.topK < V) || opts.topP < 1 || opts.minP > 0;
}

/** log Z_kept of one row of logits (V) under `opts`; 0 when nothing is truncated. */
export function keptLogMass(logits: ArrayLike<number>, opts: SampleOptions): number {
  const V = logits.length;
  if (!truncates(opts, V)) return 0;
  let zmax = -Infinity;
  for (let i = 0; i < V; i++) zmax = Math.max(zmax, logits[i] / opts.temperature);
  const q = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) total += q[i] = Math.exp(logits[i] / opts.temperature - zmax);
  const sorted = Float64Array.from(q).sort().reverse(); // descending
  // top-k: q >= the k-th largest (ties kept)
  let thr = opts.topK > 0 && opts.topK < V ? sorted[opts.topK - 1] : 0;
  // top-p over the top-k survivors: smallest prefix by probability reaching topP of their mass
  if (opts.topP < 1) {
    let massK = 0;
    for (const x of sorted) if (x >= thr) massK += x;
    let acc = 0;
    for (const x of sorted) {
      if (x < thr) break;
      acc += x;
      if (acc >= opts.topP * massK) {
        thr = Math.max(thr, x);
        break;
      }
    }
  }
  // min-p: q >= minP (q_max = 1)
  if (opts.minP > 0) thr = Math.max(thr, opts.minP);
  let kept = 0;
  for (let i = 0; i < V; i++) if (q[i] >= thr) kept += q[i];
  return Math.log(kept / total);
}
