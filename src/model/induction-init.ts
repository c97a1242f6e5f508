// Induction initialisation: the attention weights of a freshly made model start out as an
// induction circuit instead of noise. Every weight still trains; the model stays a standard Qwen3.
//
// Why: deduction over premises is in-context look-up ("the value after the earlier `foam`"), and a
// randomly initialised tiny model finds the circuit for it, induction (a previous-token head in
// one layer feeding a match-and-copy head in the next), only after a long plateau — copying a list
// from a random atom took it 1,000-1,750 steps of batch 64, and recall from scratch never read a
// value in 2,000 (results/sft-probes). Wired at the start, both learn within 125-250 steps
// (with the one-token head alone; the two-token head is for "x is v", which that did not read).
//
// The wiring (H = hidden, hd = head_dim; A, B, C are orthonormal hd-row subspaces of the
// residual, and c one more direction):
//  * every token embedding gets the shared direction c (as large as the rest of it), and the
//    embeddings are 2.5x the preset's std, so a token's identity survives the heads' writes;
//  * layer 0, kv group 0: a previous-token head; group 1: a two-before head. Their queries and
//    keys read only c, the key turned by one (two) RoPE positions on the 4 fastest rotary pairs,
//    so the score q.R(j-i+n)q peaks at j = i - n. Each reads that token's A and writes it into B
//    (C);
//  * layer 1, kv group 0: a one-token induction head. It queries with the current token's A and
//    keys on B, so it attends to the position after an earlier occurrence of the current token
//    ("foam true": after "foam", read "true"), and copies that position's A out (with tied
//    embeddings, a vote for that token);
//  * layer 1, kv group 1: a two-token induction head: (current, previous) against the key's
//    (previous, two before), (A, B) against (B, C), so "foam is" finds what followed the earlier
//    "foam is" and not what followed any "is". It copies the same way;
//  * the matches use only the slow half of the rotary pairs, where a match survives RoPE over long
//    distances;
//  * every other head keeps its random weights, and the random part of every other write into the
//    residual (their o_proj, every down_proj) is scaled by 1/sqrt(2 layers), GPT-2's residual
//    scaling, so it does not bury the wired signals.
// q/k-norm gains of layers 0 and 1 start at 2.5 so the wired heads are sharp (logits about 35).
// Measured on 40 distinct tokens repeated (test/init.test.ts): the previous-token head puts
// 1.00 of its attention on the token before, the induction heads 0.94-0.99 on the right place.

import type { TensorToSave } from "./safetensors.js";
import type { ModelConfig } from "./types.js";
import { Rng } from "../util/rng.js";

export type AttentionInit = "random" | "induction";
export const ATTENTION_INITS: readonly AttentionInit[] = ["random", "induction"];

/** Scale of the wired heads' reads: well above the random init's 0.02 x |x| = 0.23 per output. */
const WIRED = 2;
/** The q/k-norm gain of the wired layers. */
const SHARP = 2.5;
/** Scale of an induction head's copy into the residual, and of a previous-token head's write. */
const COPY = 0.1;
const SHIFT = 0.1;

/** Why a model cannot take the wiring, or null. */
export function inductionInitProblem(c: ModelConfig): string | null {
  if (c.numLayers < 2) return "needs at least 2 layers (previous-token heads feed the next layer)";
  if (c.numKvHeads < 2) return "needs at least 2 kv heads (one-token and two-token heads side by side)";
  if (!c.qkNorm) return "needs q/k-norm (Qwen3): the wired heads' sharpness is set by its gains";
  if (!c.tieWordEmbeddings) return "needs tied embeddings: the induction heads' copies vote through them";
  if (c.headDim % 8 !== 0 || c.headDim < 16) return "needs head_dim a multiple of 8, at least 16";
  if (c.hiddenSize < 3 * c.headDim + 1) return "needs hidden_size above 3 head_dims (three wired subspaces)";
  return null;
}

/** Rewire `params` (fresh initParameters output of `config`) in place; `seed` draws the subspaces. */
export function wireInduction(params: Map<string, TensorToSave>, config: ModelConfig, seed: number): void {
  const problem = inductionInitProblem(config);
  if (problem) throw new RangeError(`induction init ${problem}`);
  const rng = new Rng(seed + 7777);
  const { hiddenSize: H, headDim: hd, numHeads: nH, numKvHeads: nKv, numLayers } = config;
  const per = nH / nKv, half = hd / 2;
  const get = (name: string): Float32Array => params.get(name)!.data as Float32Array;
  const gauss = (): number => rng.normal(0, 1);

  // hd orthonormal rows (Gram-Schmidt), orthogonal to everything drawn before.
  const taken: Float32Array[] = [];
  const subspace = (rows: number): Float32Array[] => {
    const out: Float32Array[] = [];
    while (out.length < rows) {
      const r = new Float32Array(H).map(gauss);
      for (const q of taken) {
        let d = 0;
        for (let i = 0; i < H; i++) d += r[i]! * q[i]!;
        for (let i = 0; i < H; i++) r[i]! -= d * q[i]!;
      }
      const n = Math.hypot(...r);
      const row = r.map((v) => v / n);
      out.push(row);
      taken.push(row);
    }
    return out;
  };
  const [c] = subspace(1) as [Float32Array];
  const A = subspace(hd), B = subspace(hd), C = subspace(hd);

  // A previous-token head's query u (the 4 fastest rotary pairs) and its key, u turned by n
  // positions (rotate-half layout: pair (d, d + hd/2) turns by theta^(-2d/hd) a position).
  const u = (d: number): number => ((d % half) < 4 ? 1 : 0);
  const turned = (n: number) => (d: number): number => {
    const th = n * Math.pow(config.ropeTheta, (-2 * (d % half)) / hd);
    return d < half ? u(d) * Math.cos(th) - u(d + half) * Math.sin(th) : u(d) * Math.cos(th) + u(d - half) * Math.sin(th);
  };
  // A content match rides on the slow half of the pairs only; the two-token head splits them:
  // its first m (< hd/4 of the slow dims) match the current token, the rest the one before it.
  const slow = (d: number): boolean => (d % half) >= half / 2;
  const firstHalf = (d: number): boolean => (d % (half / 2)) < half / 4;

  /** row d of q / k / v as a function of the residual coordinate i; o's column d writes (i, d). */
  interface Head { q: (d: number, i: number) => number; k: (d: number, i: number) => number; v: (d: number, i: number) => number; o: (i: number, d: number) => number }
  const shift = (n: number, into: Float32Array[]): Head => ({
    q: (d, i) => 3 * u(d) * c[i]!,
    k: (d, i) => 3 * turned(n)(d) * c[i]!,
    v: (d, i) => WIRED * A[d]![i]!,
    o: (i, d) => SHIFT * into[d]![i]!,
  });
  const copyOut = { v: (d: number, i: number) => WIRED * A[d]![i]!, o: (i: number, d: number) => COPY * A[d]![i]! };
  const wired: Record<string, Head> = {
    "0.0": shift(1, B), // writes the token before into B
    "0.1": shift(2, C), // writes the token two before into C
    // one-token induction: current token (A) against the token before each key (B)
    "1.0": { q: (d, i) => (slow(d) ? WIRED * A[d]![i]! : 0), k: (d, i) => (slow(d) ? WIRED * B[d]![i]! : 0), ...copyOut },
    // two-token induction: (current, previous) = (A, B) against the key's (previous, two before) = (B, C)
    "1.1": {
      q: (d, i) => (!slow(d) ? 0 : WIRED * (firstHalf(d) ? A : B)[d]![i]!),
      k: (d, i) => (!slow(d) ? 0 : WIRED * (firstHalf(d) ? B : C)[d]![i]!),
      ...copyOut,
    },
  };
  const residualScale = 1 / Math.sqrt(2 * numLayers);

  for (let l = 0; l < numLayers; l++) {
    const at = `model.layers.${l}.self_attn.`;
    const q = get(at + "q_proj.weight"), k = get(at + "k_proj.weight"), v = get(at + "v_proj.weight"), o = get(at + "o_proj.weight");
    for (let g = 0; g < nKv; g++) {
      const head = wired[`${l}.${g}`];
      // A wired head's weights replace the random ones; any other keeps them, its output scaled.
      for (let d = 0; d < hd; d++) for (let i = 0; i < H; i++) {
        const kx = (g * hd + d) * H + i;
        if (head) { k[kx] = head.k(d, i); v[kx] = head.v(d, i); }
        for (let j = 0; j < per; j++) {
          const qx = ((g * per + j) * hd + d) * H + i, ox = i * nH * hd + (g * per + j) * hd + d;
          if (head) { q[qx] = head.q(d, i); o[ox] = head.o(i, d) / per; } else o[ox]! *= residualScale;
        }
      }
    }
  }
  for (let l = 0; l < numLayers; l++) {
    const down = get(`model.layers.${l}.mlp.down_proj.weight`);
    for (let i = 0; i < down.length; i++) down[i]! *= residualScale;
  }
  const e = get("model.embed_tokens.weight"), en = 2.5 * 0.02 * Math.sqrt(H);
  for (let t = 0; t < config.vocabSize; t++) for (let i = 0; i < H; i++) e[t * H + i] = 2.5 * e[t * H + i]! + en * c[i]!;
  for (const l of [0, 1]) for (const n of ["q_norm", "k_norm"]) get(`model.layers.${l}.self_attn.${n}.weight`).fill(SHARP);
}
