// Induction initialisation: the attention weights of a freshly made model start out as an
// induction circuit instead of noise. Every weight still trains; the model stays a standard Qwen3.
//
// Why: deduction over premises is in-context look-up ("the value after the earlier `foam`"), and a
// randomly initialised tiny model finds the circuit for it, induction (a previous-token head in
// one layer feeding a match-and-copy head in the next), only after a long plateau — copying a list
// from a random atom took it 1,000-1,750 steps of batch 64, and recall from scratch never read a
// value in 2,000 (results/sft-probes). Wired at the start, both learn within 125-250 steps.
//
// The wiring (H = hidden, hd = head_dim, subspaces are hd orthonormal rows of the H-dim residual):
//  * every token embedding gets one shared direction c (as large as the rest of it), and the
//    embeddings are 2.5x the preset's std, so a token's identity survives the heads' writes;
//  * layer 0, kv group 0: a previous-token head. Its query and key read only c, the key turned by
//    one RoPE position on the 4 fastest rotary pairs, so the score q.R(j-i+1)q peaks at j = i - 1.
//    It reads the previous token's subspace A and writes it into subspace B;
//  * layer 1, kv group 0: the induction head. It queries with the current token's A and keys on
//    B, so it attends to the position after an earlier occurrence of the current token, and copies
//    that position's A out (with tied embeddings, a vote for that token). Its match uses only the
//    slow half of the rotary pairs, where a match survives RoPE over long distances;
//  * every other kv group starts "mimetic" (Trockman & Kolter, 2023): its query and key heads read
//    the same random subspace (attend to similar tokens) and value/output copy another, and its
//    random output is scaled by 1/sqrt(2 layers) (GPT-2's residual scaling) so it does not bury
//    the wired signals.
// q/k-norm gains of layers 0 and 1 start at 2.5 so the wired heads are sharp (logits about 35).
// On 40 distinct tokens repeated the previous-token head puts 1.00 of its attention on the token
// before and the induction head about 0.5 on the right place (test/init.test.ts).
//
// What it does not give: a read two tokens on ("foam is true": after "foam is"), which the prompt's
// facts need. A second version added a two-before head and a two-token induction head (and scaled
// every down_proj): recall in the "x is v" form then read every value within 125 steps, but never
// learned that an atom is absent, and SFT on the GraphLI trace got slower than from a random init
// (loss 1.5-1.8 at step 400 against 0.35 here): results/sft-probes/README.md. The tokenizer gives
// that read instead: GraphLI's models keep " is true" whole (tasks/index.ts taskPhrases).
// Measured on the tiny preset only; on the small one the induction head starts at 0.2-0.4.

import type { TensorToSave } from "./safetensors.js";
import type { ModelConfig } from "./types.js";
import { Rng } from "../util/rng.js";

export type AttentionInit = "random" | "induction";
export const ATTENTION_INITS: readonly AttentionInit[] = ["random", "induction"];

/** Scale of the mimetic heads' reads and of their copies. */
const MIMETIC = 0.5;
/** Scale of the wired heads' reads: well above the random init's 0.02 x |x| = 0.23 per output. */
const WIRED = 2;
/** The q/k-norm gain of the wired layers. */
const SHARP = 2.5;
/** Scale of the induction head's copy into the residual. */
const COPY = 0.1;

/** Why a model cannot take the wiring, or null. */
export function inductionInitProblem(c: ModelConfig): string | null {
  if (c.numLayers < 2) return "needs at least 2 layers (a previous-token head feeds the next layer)";
  if (!c.qkNorm) return "needs q/k-norm (Qwen3): the wired heads' sharpness is set by its gains";
  if (!c.tieWordEmbeddings) return "needs tied embeddings: the induction head's copy votes through them";
  if (c.headDim % 4 !== 0 || c.headDim < 16) return "needs head_dim a multiple of 4, at least 16";
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
  const unit = (n: number): Float32Array => { const r = new Float32Array(n).map(gauss); const s = Math.hypot(...r); return r.map((v) => v / s); };

  const c = unit(H);
  const taken: Float32Array[] = [c];
  // hd orthonormal rows (Gram-Schmidt), orthogonal to c and to the wired subspaces A and B.
  const subspace = (reserve = false): Float32Array[] => {
    const rows: Float32Array[] = [];
    while (rows.length < hd) {
      const r = new Float32Array(H).map(gauss);
      for (const q of [...taken, ...rows]) {
        let d = 0;
        for (let i = 0; i < H; i++) d += r[i]! * q[i]!;
        for (let i = 0; i < H; i++) r[i]! -= d * q[i]!;
      }
      const n = Math.hypot(...r);
      rows.push(r.map((v) => v / n));
    }
    if (reserve) taken.push(...rows);
    return rows;
  };
  const A = subspace(true), B = subspace(true);
  // The previous-token head's query u (the 4 fastest rotary pairs) and its key, u turned by one
  // position (rotate-half layout: pair (d, d + hd/2) turns by theta^(-2d/hd)).
  const u = (d: number): number => ((d % half) < 4 ? 1 : 0);
  const uTurned = (d: number): number => {
    const th = Math.pow(config.ropeTheta, (-2 * (d % half)) / hd);
    return d < half ? u(d) * Math.cos(th) - u(d + half) * Math.sin(th) : u(d) * Math.cos(th) + u(d - half) * Math.sin(th);
  };
  // A content match rides on the slow half of the pairs only.
  const slow = (d: number): number => ((d % half) >= half / 2 ? 1 : 0);
  const residualScale = 1 / Math.sqrt(2 * numLayers);

  for (let l = 0; l < numLayers; l++) {
    const at = `model.layers.${l}.self_attn.`;
    const q = get(at + "q_proj.weight"), k = get(at + "k_proj.weight"), v = get(at + "v_proj.weight"), o = get(at + "o_proj.weight");
    for (let g = 0; g < nKv; g++) {
      const prev = l === 0 && g === 0, ind = l === 1 && g === 0, wired = prev || ind;
      const P = subspace(), V = subspace();
      // row d of q / k / v read from the residual (d, i); o's column d writes into it (i, d)
      const qr = prev ? (d: number, i: number) => 3 * u(d) * c[i]! : ind ? (d: number, i: number) => WIRED * slow(d) * A[d]![i]! : (d: number, i: number) => MIMETIC * slow(d) * P[d]![i]!;
      const kr = prev ? (d: number, i: number) => 3 * uTurned(d) * c[i]! : ind ? (d: number, i: number) => WIRED * slow(d) * B[d]![i]! : (d: number, i: number) => MIMETIC * slow(d) * P[d]![i]!;
      const vr = wired ? (d: number, i: number) => WIRED * A[d]![i]! : (d: number, i: number) => MIMETIC * V[d]![i]!;
      const or = prev ? (i: number, d: number) => 0.03 * B[d]![i]! : ind ? (i: number, d: number) => COPY * A[d]![i]! : (i: number, d: number) => 0.1 * V[d]![i]!;
      // A wired head's weights replace the random ones; the others are added to them.
      const keepIn = wired ? 0 : 1, keepOut = wired ? 0 : residualScale;
      for (let d = 0; d < hd; d++) for (let i = 0; i < H; i++) {
        const kx = (g * hd + d) * H + i;
        k[kx] = keepIn * k[kx]! + kr(d, i);
        v[kx] = keepIn * v[kx]! + vr(d, i);
        for (let j = 0; j < per; j++) {
          const qx = ((g * per + j) * hd + d) * H + i, ox = i * nH * hd + (g * per + j) * hd + d;
          q[qx] = keepIn * q[qx]! + qr(d, i);
          o[ox] = keepOut * o[ox]! + or(i, d) / per;
        }
      }
    }
  }
  const e = get("model.embed_tokens.weight"), en = 2.5 * 0.02 * Math.sqrt(H);
  for (let t = 0; t < config.vocabSize; t++) for (let i = 0; i < H; i++) e[t * H + i] = 2.5 * e[t * H + i]! + en * c[i]!;
  for (const l of [0, 1]) for (const n of ["q_norm", "k_norm"]) get(`model.layers.${l}.self_attn.${n}.weight`).fill(SHARP);
}
