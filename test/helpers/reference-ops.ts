// Naive float64 reference implementations of the Backend ops: the one JS reference of the tests.
// The webgpu and cross-backend tests compare against these functions; naive-ops.ts wraps them in
// the addon's calling convention for the model tests. Written for clarity, not speed; shapes
// follow src/backend/backend.ts.

import type { GrpoLossOptions } from "../../src/backend/backend.js";
import { mulberry32 } from "../../src/util/rng.js";

export type Arr = ArrayLike<number>;

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Deterministic normal numbers with standard deviation `scale` (Box-Muller on mulberry32). */
export function normals(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

export function randInt(n: number, seed: number, lo: number, hi: number): Int32Array {
  const u = rand(n, seed, 0, 1);
  return Int32Array.from(u, (x) => Math.min(hi - 1, lo + Math.floor(x * (hi - lo))));
}

/** max|a - b| / max(1, max|b|): the normalised error used by every comparison. */
export function nerr(a: Arr, b: Arr): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    d = Number.isNaN(x) ? Infinity : Math.max(d, x);
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / Math.max(1, m);
}

/** max|got - want| / max|want|: relative to the largest entry, for outputs far below 1. */
export function relErr(got: Arr, want: Arr): number {
  let d = 0, s = 1e-30;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    s = Math.max(s, Math.abs(want[i]));
  }
  return d / s;
}

export function matmul(a: Arr, b: Arr, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha = 1, init?: Arr): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + m] : a[m * K + k]) * (transB ? b[n * K + k] : b[k * N + n]);
      out[m * N + n] = alpha * s + (init ? init[m * N + n] : 0);
    }
  return out;
}

export function rmsnorm(inp: Arr, w: Arr, N: number, C: number, eps: number): { out: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(N * C), rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[n * C + c] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[n] = r;
    for (let c = 0; c < C; c++) out[n * C + c] = inp[n * C + c] * r * w[c];
  }
  return { out, rstd };
}

export function rmsnormBackward(dout: Arr, inp: Arr, w: Arr, N: number, C: number, eps: number): { dinp: Float64Array; dw: Float64Array } {
  return rmsnormBackwardFromRstd(dout, inp, w, rmsnorm(inp, w, N, C, eps).rstd, N, C);
}

/** rmsnormBackward given the forward's rstd (N), as the addon takes it. */
export function rmsnormBackwardFromRstd(dout: Arr, inp: Arr, w: Arr, rstd: Arr, N: number, C: number): { dinp: Float64Array; dw: Float64Array } {
  const dinp = new Float64Array(N * C), dw = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const r = rstd[n];
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[n * C + c] * w[c] * inp[n * C + c];
    for (let c = 0; c < C; c++) {
      dinp[n * C + c] = r * (dout[n * C + c] * w[c] - (inp[n * C + c] * r * r * dot) / C);
      dw[c] += dout[n * C + c] * inp[n * C + c] * r;
    }
  }
  return { dinp, dw };
}

export function rope(inp: Arr, pos: Arr, N: number, nh: number, hd: number, theta: number, sign = 1): Float64Array {
  const out = new Float64Array(N * nh * hd), half = hd / 2;
  for (let n = 0; n < N; n++)
    for (let h = 0; h < nh; h++)
      for (let i = 0; i < half; i++) {
        const a = pos[n] * Math.pow(theta, (-2 * i) / hd);
        const c = Math.cos(a), s = sign * Math.sin(a);
        const o = (n * nh + h) * hd;
        const x1 = inp[o + i], x2 = inp[o + i + half];
        out[o + i] = x1 * c - x2 * s;
        out[o + i + half] = x2 * c + x1 * s;
      }
  return out;
}

/** Causal GQA attention; returns out and lse (B, nh, T). */
export function attention(q: Arr, k: Arr, v: Arr, B: number, T: number, nh: number, nkv: number, hd: number): { out: Float64Array; lse: Float64Array } {
  return attentionAt(q, k, v, B, T, T, nh, nkv, hd);
}

/**
 * Attention of queries (B, Tq, nh, hd) against keys/values (B, S, nkv, hd), query t of row b
 * at position start[b] + t seeing keys 0 .. start[b] + t; lse (B, nh, Tq). Causal
 * self-attention is start = 0, the KV-cache decode start = pos.
 */
export function attentionAt(q: Arr, k: Arr, v: Arr, B: number, Tq: number, S: number, nh: number, nkv: number, hd: number, start?: Arr): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(B * Tq * nh * hd), lse = new Float64Array(B * nh * Tq);
  const sc = 1 / Math.sqrt(hd), rep = nh / nkv;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < nh; h++)
      for (let t = 0; t < Tq; t++) {
        const g = Math.floor(h / rep), last = (start?.[b] ?? 0) + t;
        const qo = ((b * Tq + t) * nh + h) * hd;
        const s: number[] = [];
        for (let j = 0; j <= last; j++) {
          let d = 0;
          for (let x = 0; x < hd; x++) d += q[qo + x] * k[((b * S + j) * nkv + g) * hd + x];
          s.push(d * sc);
        }
        const m = Math.max(...s);
        const l = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
        lse[(b * nh + h) * Tq + t] = m + Math.log(l);
        for (let j = 0; j <= last; j++)
          for (let x = 0; x < hd; x++) out[qo + x] += (Math.exp(s[j] - m) / l) * v[((b * S + j) * nkv + g) * hd + x];
      }
  return { out, lse };
}

/** Analytic attention backward in float64. */
export function attentionBackward(dout: Arr, q: Arr, k: Arr, v: Arr, B: number, T: number, nh: number, nkv: number, hd: number) {
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const sc = 1 / Math.sqrt(hd), rep = nh / nkv;
  const qi = (b: number, t: number, h: number) => ((b * T + t) * nh + h) * hd;
  const ki = (b: number, t: number, g: number) => ((b * T + t) * nkv + g) * hd;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < nh; h++)
      for (let t = 0; t < T; t++) {
        const g = Math.floor(h / rep);
        const s: number[] = [];
        for (let j = 0; j <= t; j++) {
          let d = 0;
          for (let x = 0; x < hd; x++) d += q[qi(b, t, h) + x] * k[ki(b, j, g) + x];
          s.push(d * sc);
        }
        const m = Math.max(...s);
        const l = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
        const p = s.map((x) => Math.exp(x - m) / l);
        const dp = p.map((_, j) => {
          let d = 0;
          for (let x = 0; x < hd; x++) d += dout[qi(b, t, h) + x] * v[ki(b, j, g) + x];
          return d;
        });
        const D = p.reduce((acc, pj, j) => acc + pj * dp[j], 0);
        for (let j = 0; j <= t; j++) {
          const ds = p[j] * (dp[j] - D);
          for (let x = 0; x < hd; x++) {
            dq[qi(b, t, h) + x] += ds * sc * k[ki(b, j, g) + x];
            dk[ki(b, j, g) + x] += ds * sc * q[qi(b, t, h) + x];
            dv[ki(b, j, g) + x] += p[j] * dout[qi(b, t, h) + x];
          }
        }
      }
  return { dq, dk, dv };
}

export function attentionDecode(q: Arr, kc: Arr, vc: Arr, pos: Arr, B: number, Tq: number, S: number, nh: number, nkv: number, hd: number): Float64Array {
  return attentionAt(q, kc, vc, B, Tq, S, nh, nkv, hd, pos).out;
}

const silu = (g: number) => g / (1 + Math.exp(-g));

/** silu(gate) * up, elementwise. */
export function swiglu(gate: Arr, up: Arr): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => silu(gate[i]) * up[i]);
}

/** Rows idx of a (., C) table: the embedding lookup and gatherRows. */
export function rows(table: Arr, idx: Arr, C: number): Float64Array {
  const out = new Float64Array(idx.length * C);
  for (let n = 0; n < idx.length; n++) for (let c = 0; c < C; c++) out[n * C + c] = table[idx[n] * C + c];
  return out;
}

/** log-softmax pieces of one row of z: lse, entropy. */
export function rowStats(z: Arr, off: number, V: number): { lse: number; entropy: number } {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, z[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(z[off + v] - m);
  const lse = m + Math.log(s);
  let h = 0;
  for (let v = 0; v < V; v++) {
    const lp = z[off + v] - lse;
    if (lp > -Infinity) h -= Math.exp(lp) * lp;
  }
  return { lse, entropy: h };
}

export function logprobFromLogits(logits: Arr, targets: Arr, N: number, V: number, T: number) {
  const lp = new Float64Array(N), ent = new Float64Array(N), lse = new Float64Array(N);
  const z = Float64Array.from(logits, (x) => x / T);
  for (let n = 0; n < N; n++) {
    const st = rowStats(z, n * V, V);
    lse[n] = st.lse;
    if (targets[n] < 0) continue;
    lp[n] = z[n * V + targets[n]] - st.lse;
    ent[n] = st.entropy;
  }
  return { lp, ent, lse };
}

/** d(sum dlp*logprob + dent*entropy)/dlogits for logits (N, V) at temperature T. */
export function logprobBackward(logits: Arr, targets: Arr, dlp: Arr, dent: Arr, N: number, V: number, T: number): Float64Array {
  const g = new Float64Array(N * V);
  const z = Float64Array.from(logits, (x) => x / T);
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const { lse, entropy } = rowStats(z, n * V, V);
    for (let v = 0; v < V; v++) {
      const logp = z[n * V + v] - lse, p = Math.exp(logp);
      g[n * V + v] = (dlp[n] * ((v === targets[n] ? 1 : 0) - p) - dent[n] * p * (logp + entropy)) / T;
    }
  }
  return g;
}

/** Central differences of a float64 scalar function f at x, at the indices idx (default: every
 * element); x is restored afterwards. */
export function fdGrad(f: (x: Float64Array) => number, x: Float64Array, idx?: number[], h = 1e-5): Float64Array {
  const at = idx ?? Array.from(x, (_, i) => i);
  return Float64Array.from(at, (i) => {
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f(x);
    x[i] = x0 - h;
    const fm = f(x);
    x[i] = x0;
    return (fp - fm) / (2 * h);
  });
}

export function dot(a: Arr, b: Arr): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export interface SampleRefOptions {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  greedy?: boolean;
}

/** The kept set's weights q (0 = dropped) of one row, per native/include/anvil/sample.h. */
export function sampleWeights(x: Arr, o: SampleRefOptions): Float64Array {
  const V = x.length;
  const invT = Math.fround(1 / o.temperature);
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, x[i]);
  const mz = Math.fround(mx * invT);
  const q = Float64Array.from(x, (v) => Math.exp(Math.fround(v * invT) - mz));
  let thr = 0;
  if (o.topK > 0 && o.topK < V) thr = [...q].sort((a, b) => b - a)[o.topK - 1];
  if (o.topP < 1) {
    const kept = [...q].filter((v) => v >= thr).sort((a, b) => b - a);
    const need = o.topP * kept.reduce((s, v) => s + v, 0);
    let cum = 0;
    for (const v of kept) {
      cum += v;
      if (cum >= need) {
        thr = Math.max(thr, v);
        break;
      }
    }
  }
  if (o.minP > 0) thr = Math.max(thr, o.minP);
  return q.map((v) => (v >= thr ? v : 0));
}

/** Reference draw: inverse CDF over the kept weights in index order at u * mass. */
export function sampleRow(x: Arr, u: number, o: SampleRefOptions): number {
  if (o.greedy || !(o.temperature > 0)) {
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    return best;
  }
  const q = sampleWeights(x, o);
  const target = u * q.reduce((s, v) => s + v, 0);
  let cum = 0, last = -1;
  for (let i = 0; i < q.length; i++) {
    if (q[i] > 0) {
      cum += q[i];
      last = i;
      if (cum > target) return i;
    }
  }
  return last;
}

export type GrpoRefOptions = GrpoLossOptions;

/** GRPO loss per native/include/anvil/grpo_loss.h, in float64: gradients and the 11 stats. */
export function grpoLoss(lp: Arr, old: Arr, refLp: Arr | null, roll: Arr | null, ent: Arr | null, adv: Arr, mask: Arr, o: GrpoRefOptions) {
  const { B, T } = o;
  const N = B * T;
  const dlp = new Float64Array(N), dent = new Float64Array(N);
  const seq = Array.from({ length: B }, (_, b) => {
    let s = 0;
    for (let t = 0; t < T; t++) s += mask[b * T + t];
    return s;
  });
  const total = seq.reduce((a, b) => a + b, 0);
  const nonempty = seq.filter((s) => s > 0).length;
  const lo = 1 - o.epsLow, hi = 1 + o.epsHigh, c = o.dualClip;
  let loss = 0, pgl = 0, klS = 0, entS = 0, cl = 0, ch = 0, du = 0, rs = 0, rmin = Infinity, rmax = -Infinity;
  for (let b = 0; b < B; b++) {
    const denom = o.aggregation === "token-mean" ? total : o.aggregation === "seq-mean-token-mean" ? seq[b] * nonempty : o.aggregation === "seq-mean-token-sum" ? nonempty : B * (o.maxCompletionLength ?? T);
    const A = adv[b];
    for (let t = 0; t < T; t++) {
      const i = b * T + t, m = mask[i];
      if (m === 0 || denom === 0) continue;
      const wt = m / denom;
      const r = Math.exp(lp[i] - old[i]);
      const low = A < 0 && r < lo, high = A > 0 && r > hi, dual = c > 1 && A < 0 && r > c;
      let pg: number, dpg: number;
      if (low || high) [pg, dpg] = [Math.min(Math.max(r, lo), hi) * A, 0];
      else if (dual) [pg, dpg] = [c * A, 0];
      else [pg, dpg] = [r * A, r * A];
      const w = o.tisCap > 0 ? Math.min(Math.exp(old[i] - roll![i]), o.tisCap) : 1;
      let kl = 0, dkl = 0;
      if (refLp) {
        const d = lp[i] - refLp[i];
        if (o.kl === "k1") [kl, dkl] = [d, 1];
        else if (o.kl === "k2") [kl, dkl] = [0.5 * d * d, d];
        else [kl, dkl] = [Math.exp(-d) + d - 1, 1 - Math.exp(-d)];
      }
      const h = ent ? ent[i] : 0;
      const tokPg = -w * pg;
      dlp[i] = wt * (-w * dpg + o.beta * dkl);
      dent[i] = wt * -o.entropyCoef;
      loss += wt * (tokPg + o.beta * kl - o.entropyCoef * h);
      pgl += wt * tokPg;
      klS += m * kl;
      entS += m * h;
      cl += m * +low;
      ch += m * +high;
      du += m * +dual;
      rs += m * r;
      rmin = Math.min(rmin, r);
      rmax = Math.max(rmax, r);
    }
  }
  const inv = total > 0 ? 1 / total : 0;
  const stats = [loss, pgl, klS * inv, entS * inv, cl * inv, ch * inv, du * inv, total > 0 ? rmin : 0, total > 0 ? rmax : 0, rs * inv, total];
  return { dlp, dent, stats };
}
