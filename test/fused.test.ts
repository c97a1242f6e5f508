// Fused log-prob kernels and the GRPO loss against float64 TypeScript references, with
// finite-difference checks of every gradient. Odd sizes, several tiles, ignored targets.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  GRPO_STATS,
  grpoLoss,
  linearLogprob,
  linearLogprobBackward,
  logprobFromLogits,
  type GrpoLossInputs,
  type GrpoLossOptions,
  type KlEstimator,
  type LossAggregation,
} from "../src/kernels.js";
import { mulberry32 as rng } from "../src/util/rng.js";

function normals(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-3): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), floor));
  return worst;
}

// ---- float64 references ----------------------------------------------------------------------

interface Ref {
  logprob: Float64Array;
  entropy: Float64Array;
  lse: Float64Array;
}
/** Unfused: logits = hidden @ W^T / T (float64), log_softmax, gather, entropy. */
function refForward(hidden: ArrayLike<number>, W: ArrayLike<number>, targets: Int32Array, N: number, H: number, V: number, T: number): Ref & { logits: Float64Array } {
  const logits = new Float64Array(N * V);
  for (let i = 0; i < N; i++)
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += hidden[i * H + h] * W[v * H + h];
      logits[i * V + v] = s / T;
    }
  return { logits, ...refFromLogits(logits, targets, N, V) };
}
function refFromLogits(z: Float64Array, targets: Int32Array, N: number, V: number): Ref {
  const logprob = new Float64Array(N), entropy = new Float64Array(N), lse = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[i * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[i * V + v] - m);
    const l = m + Math.log(s);
    let pz = 0;
    for (let v = 0; v < V; v++) if (z[i * V + v] > -Infinity) pz += Math.exp(z[i * V + v] - l) * z[i * V + v];
    lse[i] = l;
    if (targets[i] < 0) continue;
    logprob[i] = z[i * V + targets[i]] - l;
    entropy[i] = l - pz;
  }
  return { logprob, entropy, lse };
}
/** Unfused backward in float64: dlogits = (dlp (onehot - p) - dH p (z - mu)) / T, then two matmuls. */
function refBackward(hidden: ArrayLike<number>, W: ArrayLike<number>, targets: Int32Array, dlp: ArrayLike<number>, dH: ArrayLike<number>, N: number, H: number, V: number, T: number) {
  const f = refForward(hidden, W, targets, N, H, V, T);
  const dhidden = new Float64Array(N * H), dW = new Float64Array(V * H);
  for (let i = 0; i < N; i++) {
    if (targets[i] < 0) continue;
    const mu = f.lse[i] - f.entropy[i];
    for (let v = 0; v < V; v++) {
      const z = f.logits[i * V + v];
      const p = Math.exp(z - f.lse[i]);
      const g = (dlp[i] * ((v === targets[i] ? 1 : 0) - p) - dH[i] * p * (z - mu)) / T;
      for (let h = 0; h < H; h++) {
        dhidden[i * H + h] += g * W[v * H + h];
        dW[v * H + h] += g * hidden[i * H + h];
      }
    }
  }
  return { dhidden, dW };
}

function makeLinearCase(N: number, H: number, V: number, seed: number, scale = 1) {
  const hidden = normals(N * H, seed, scale);
  const weight = normals(V * H, seed + 1, 1 / Math.sqrt(H));
  const r = rng(seed + 2);
  const targets = new Int32Array(N);
  for (let i = 0; i < N; i++) targets[i] = i % 5 === 3 ? -1 : Math.floor(r() * V);
  return { hidden, weight, targets };
}

describe("logprobFromLogits", () => {
  it("matches float64 log_softmax + gather + entropy (odd V, temperature, ignored rows, large logits)", () => {
    for (const [N, V, T, scale] of [[13, 257, 1, 1], [7, 5003, 0.7, 3], [5, 3, 1.3, 40]] as const) {
      const logits = normals(N * V, 11 + V, scale);
      const targets = new Int32Array(N).map((_, i) => (i === 2 ? -1 : (i * 37) % V));
      const got = logprobFromLogits(logits, targets, { N, V, temperature: T });
      const z = Float64Array.from(logits, (x) => x / T);
      const want = refFromLogits(z, targets, N, V);
      expect(maxRelErr(got.logprob, want.logprob)).toBeLessThan(2e-5);
      // entropy near 0 (peaked rows) is limited by float32 absolute precision
      expect(maxRelErr(got.entropy, want.entropy, 0.1), `V=${V}`).toBeLessThan(2e-5);
      expect(got.logprob[2]).toBe(0);
      expect(got.entropy[2]).toBe(0);
    }
  });

  it("treats -inf logits as probability 0 and rejects out-of-range targets", () => {
    const V = 37;
    const logits = normals(V, 3);
    for (let v = 0; v < V; v += 3) logits[v] = -Infinity;
    const targets = new Int32Array([1]);
    const got = logprobFromLogits(logits, targets, { N: 1, V });
    const want = refFromLogits(Float64Array.from(logits), targets, 1, V);
    expect(got.logprob[0]).toBeCloseTo(want.logprob[0], 5);
    expect(got.entropy[0]).toBeCloseTo(want.entropy[0], 5);
    expect(() => logprobFromLogits(logits, new Int32Array([V]), { N: 1, V })).toThrow(/out of range/);
    expect(() => logprobFromLogits(logits, targets, { N: 2, V })).toThrow(RangeError);
  });
});

describe("linearLogprob forward", () => {
  it("matches the unfused float64 reference at odd sizes", () => {
    // (13, 19, 257): one partial tile; (300, 19, 4099): several token blocks and vocab tiles, partial
    // both ways; (700, 9, 300): one vocab tile, three token blocks (the kernel splits tokens then).
    for (const [N, H, V, T, scale] of [[13, 19, 257, 1, 1], [300, 19, 4099, 0.7, 1], [9, 33, 2048, 1, 12], [700, 9, 300, 1.2, 2]] as const) {
      const { hidden, weight, targets } = makeLinearCase(N, H, V, N + H + V, scale);
      const got = linearLogprob(hidden, weight, targets, { N, H, V, temperature: T });
      const want = refForward(hidden, weight, targets, N, H, V, T);
      expect(maxRelErr(got.logprob, want.logprob)).toBeLessThan(5e-5);
      expect(maxRelErr(got.entropy, want.entropy)).toBeLessThan(5e-5);
      expect(maxRelErr(got.lse, want.lse)).toBeLessThan(5e-5);
      for (let i = 0; i < N; i++) if (targets[i] < 0) expect([got.logprob[i], got.entropy[i]]).toEqual([0, 0]);
    }
  });

  it("equals logprobFromLogits on the materialised logits (the unfused CPU composition)", () => {
    const [N, H, V] = [21, 17, 3001];
    const { hidden, weight, targets } = makeLinearCase(N, H, V, 5);
    const logits = new Float32Array(N * V);
    for (let i = 0; i < N; i++)
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let h = 0; h < H; h++) s += hidden[i * H + h] * weight[v * H + h];
        logits[i * V + v] = s;
      }
    const unfused = logprobFromLogits(logits, targets, { N, V, temperature: 0.9 });
    const fused = linearLogprob(hidden, weight, targets, { N, H, V, temperature: 0.9 });
    expect(maxRelErr(fused.logprob, unfused.logprob)).toBeLessThan(5e-5);
    expect(maxRelErr(fused.entropy, unfused.entropy)).toBeLessThan(5e-5);
  });

  it("validates shapes and targets", () => {
    const { hidden, weight, targets } = makeLinearCase(3, 4, 5, 1);
    expect(() => linearLogprob(hidden, weight, targets, { N: 3, H: 4, V: 6 })).toThrow(/weight has 20 elements, expected 24/);
    expect(() => linearLogprob(hidden, weight, new Int32Array([0, 5, 1]), { N: 3, H: 4, V: 5 })).toThrow(/targets\[1\] = 5/);
    expect(() => linearLogprob(hidden, weight, targets, { N: 3, H: 4, V: 5, temperature: 0 })).toThrow(/temperature/);
    expect(() => linearLogprob(hidden as unknown as Float32Array, weight, Float32Array.from(targets) as unknown as Int32Array, { N: 3, H: 4, V: 5 })).toThrow(TypeError);
  });
});

describe("linearLogprob backward", () => {
  it("matches finite differences of sum(a*logprob + b*entropy) in float64", () => {
    const [N, H, V, T] = [13, 19, 257, 0.8];
    const { hidden, weight, targets } = makeLinearCase(N, H, V, 42);
    const a = normals(N, 7), b = normals(N, 8);
    const fwd = linearLogprob(hidden, weight, targets, { N, H, V, temperature: T });
    const got = linearLogprobBackward(a, b, hidden, weight, targets, fwd, { N, H, V, temperature: T });

    const h64 = Float64Array.from(hidden), w64 = Float64Array.from(weight);
    const loss = () => {
      const f = refForward(h64, w64, targets, N, H, V, T);
      let s = 0;
      for (let i = 0; i < N; i++) s += a[i] * f.logprob[i] + b[i] * f.entropy[i];
      return s;
    };
    const fd = (arr: Float64Array, k: number) => {
      const e = 1e-5, x = arr[k];
      arr[k] = x + e;
      const up = loss();
      arr[k] = x - e;
      const dn = loss();
      arr[k] = x;
      return (up - dn) / (2 * e);
    };
    const r = rng(9);
    for (let t = 0; t < 40; t++) {
      const k = Math.floor(r() * N * H);
      expect(Math.abs(got.dhidden[k] - fd(h64, k))).toBeLessThan(1e-4 + 1e-3 * Math.abs(got.dhidden[k]));
      const j = Math.floor(r() * V * H);
      expect(Math.abs(got.dweight[j] - fd(w64, j))).toBeLessThan(1e-4 + 1e-3 * Math.abs(got.dweight[j]));
    }
    // ignored rows get no gradient
    for (let i = 0; i < N; i++) if (targets[i] < 0) for (let h = 0; h < H; h++) expect(got.dhidden[i * H + h]).toBe(0);
  });

  it("matches the unfused float64 backward across tiles and token blocks, and accumulates into dweight", () => {
    // (300, 11, 4099): split over vocab tiles; (700, 7, 300): split over token blocks.
    for (const [N, H, V, T] of [[300, 11, 4099, 1.1], [700, 7, 300, 0.9]] as const) {
      const { hidden, weight, targets } = makeLinearCase(N, H, V, 77 + V);
      const a = normals(N, 1), b = normals(N, 2);
      const fwd = linearLogprob(hidden, weight, targets, { N, H, V, temperature: T });
      const prior = normals(V * H, 3);
      const acc = prior.slice();
      const got = linearLogprobBackward(a, b, hidden, weight, targets, fwd, { N, H, V, temperature: T }, acc);
      expect(got.dweight).toBe(acc);
      const want = refBackward(hidden, weight, targets, a, b, N, H, V, T);
      const dW = new Float64Array(V * H).map((_, k) => acc[k] - prior[k]);
      const scaleH = Math.max(...Array.from(want.dhidden, Math.abs)), scaleW = Math.max(...Array.from(want.dW, Math.abs));
      for (let k = 0; k < N * H; k++) expect(Math.abs(got.dhidden[k] - want.dhidden[k])).toBeLessThan(1e-4 * scaleH);
      for (let k = 0; k < V * H; k++) expect(Math.abs(dW[k] - want.dW[k])).toBeLessThan(1e-4 * scaleW);
    }
  });
});

describe("linearLogprob backward, rows without gradient", () => {
  it("skips rows whose dlogprob and dentropy are 0 (masked positions) with the same result, and NaN still propagates", () => {
    // Both splits: vocab tiles (300, 11, 4099) and token blocks (700, 7, 300).
    for (const [N, H, V, T] of [[300, 11, 4099, 1.1], [700, 7, 300, 0.9]] as const) {
      const { hidden, weight, targets } = makeLinearCase(N, H, V, 5 + V);
      const a = normals(N, 11), b = normals(N, 12);
      for (let i = 0; i < N; i++) if (i % 3 !== 1) a[i] = b[i] = 0; // two rows in three masked out, as prompt tokens
      const fwd = linearLogprob(hidden, weight, targets, { N, H, V, temperature: T });
      const got = linearLogprobBackward(a, b, hidden, weight, targets, fwd, { N, H, V, temperature: T });
      const want = refBackward(hidden, weight, targets, a, b, N, H, V, T);
      const scaleH = Math.max(...Array.from(want.dhidden, Math.abs)), scaleW = Math.max(...Array.from(want.dW, Math.abs));
      for (let k = 0; k < N * H; k++) expect(Math.abs(got.dhidden[k] - want.dhidden[k])).toBeLessThan(1e-4 * scaleH);
      for (let k = 0; k < V * H; k++) expect(Math.abs(got.dweight[k] - want.dW[k])).toBeLessThan(1e-4 * scaleW);
      for (let i = 0; i < N; i++) if (i % 3 !== 1) for (let h = 0; h < H; h++) expect(got.dhidden[i * H + h]).toBe(0);

      const firstActive = targets.findIndex((t, i) => t >= 0 && i % 3 === 1);
      a[firstActive] = NaN;
      const poisoned = linearLogprobBackward(a, b, hidden, weight, targets, fwd, { N, H, V, temperature: T });
      expect(Number.isNaN(poisoned.dhidden[firstActive * H])).toBe(true);
    }
  });
});

// ---- GRPO loss -------------------------------------------------------------------------------

/** Straight transcription of the design formulas, float64. */
function refGrpo(x: { lp: Float64Array; old: Float32Array; ref: Float32Array; roll: Float32Array; H: Float64Array; adv: Float32Array; mask: Float32Array }, o: GrpoLossOptions) {
  const { B, T } = o;
  const klOf = (d: number) => (o.kl === "k1" ? d : o.kl === "k2" ? 0.5 * d * d : Math.exp(-d) + d - 1);
  let loss = 0, pgLoss = 0;
  const seqMass = Array.from({ length: B }, (_, b) => x.mask.subarray(b * T, (b + 1) * T).reduce((s, m) => s + m, 0));
  const total = seqMass.reduce((s, m) => s + m, 0);
  const nonempty = seqMass.filter((m) => m > 0).length;
  const st = { klMean: 0, entropyMean: 0, clipLowFrac: 0, clipHighFrac: 0, dualClipFrac: 0, ratioMin: Infinity, ratioMax: -Infinity, ratioMean: 0 };
  for (let b = 0; b < B; b++) {
    const A = x.adv[b];
    let seqLoss = 0, seqPg = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t, m = x.mask[i];
      if (m === 0) continue;
      const r = Math.exp(x.lp[i] - x.old[i]);
      let obj = Math.min(r * A, Math.min(Math.max(r, 1 - o.epsLow), 1 + o.epsHigh) * A);
      if (o.dualClip > 1 && A < 0) obj = Math.max(obj, o.dualClip * A);
      const w = o.tisCap > 0 ? Math.min(Math.exp(x.old[i] - x.roll[i]), o.tisCap) : 1;
      const kl = klOf(x.lp[i] - x.ref[i]);
      const tok = -w * obj + o.beta * kl - o.entropyCoef * x.H[i];
      seqLoss += m * tok;
      seqPg += m * -w * obj;
      st.klMean += m * kl;
      st.entropyMean += m * x.H[i];
      st.clipLowFrac += m * Number(A < 0 && r < 1 - o.epsLow);
      st.clipHighFrac += m * Number(A > 0 && r > 1 + o.epsHigh);
      st.dualClipFrac += m * Number(o.dualClip > 1 && A < 0 && r > o.dualClip);
      st.ratioMin = Math.min(st.ratioMin, r);
      st.ratioMax = Math.max(st.ratioMax, r);
      st.ratioMean += m * r;
    }
    const L = o.maxCompletionLength ?? T;
    const denom = o.aggregation === "token-mean" ? total : o.aggregation === "seq-mean-token-mean" ? seqMass[b] * nonempty : o.aggregation === "seq-mean-token-sum" ? nonempty : B * L;
    if (denom > 0) {
      loss += seqLoss / denom;
      pgLoss += seqPg / denom;
    }
  }
  for (const k of ["klMean", "entropyMean", "clipLowFrac", "clipHighFrac", "dualClipFrac", "ratioMean"] as const) st[k] /= total;
  return { loss, pgLoss, ...st, tokens: total };
}

function grpoCase(B: number, T: number, seed: number) {
  const r = rng(seed);
  const N = B * T;
  const old = normals(N, seed + 1, 1).map((v) => -1.5 + 0.5 * v);
  const lp = old.map((v, i) => v + 0.45 * normals(N, seed + 2)[i]); // ratios spread over ~[0.3, 3]
  const ref = old.map((v, i) => v + 0.3 * normals(N, seed + 3)[i]);
  const roll = old.map((v, i) => v + 0.4 * normals(N, seed + 4)[i]);
  const H = Float32Array.from({ length: N }, () => 0.5 + 2 * r());
  const adv = Float32Array.from({ length: B }, (_, b) => (b % 3 === 0 ? -1 : 1) * (0.2 + 1.5 * r()));
  const mask = new Float32Array(N);
  for (let b = 0; b < B; b++) {
    const len = b === 1 ? 0 : 1 + Math.floor(r() * T); // one empty sequence
    for (let t = 0; t < len; t++) mask[b * T + t] = 1;
  }
  return { lp, old, ref, roll, H, adv, mask };
}

describe("grpoLoss", () => {
  const aggs: LossAggregation[] = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"];
  const kls: KlEstimator[] = ["k1", "k2", "k3"];
  const variants = [
    { dualClip: 0, tisCap: 0, entropyCoef: 0, beta: 0 },
    { dualClip: 1.6, tisCap: 0, entropyCoef: 0, beta: 0.04 },
    { dualClip: 0, tisCap: 1.3, entropyCoef: 0.01, beta: 0.1 },
    { dualClip: 2.2, tisCap: 2, entropyCoef: 0.003, beta: 0.02 },
  ];

  it("matches the float64 reference (loss, stats) and finite differences (dlogprob, dentropy) for every combination", () => {
    const [B, T] = [7, 11];
    const x = grpoCase(B, T, 2024);
    let sawLow = false, sawHigh = false, sawDual = false;
    for (const aggregation of aggs)
      for (const kl of kls)
        for (const v of variants) {
          const o: GrpoLossOptions = { B, T, epsLow: 0.2, epsHigh: 0.28, kl, aggregation, maxCompletionLength: 13, ...v };
          const inputs: GrpoLossInputs = { logprob: x.lp, oldLogprob: x.old, refLogprob: x.ref, rolloutLogprob: x.roll, entropy: x.H, advantages: x.adv, mask: x.mask };
          const got = grpoLoss(inputs, o);
          const ref64 = { lp: Float64Array.from(x.lp), old: x.old, ref: x.ref, roll: x.roll, H: Float64Array.from(x.H), adv: x.adv, mask: x.mask };
          const want = refGrpo(ref64, o);
          const ctx = `${aggregation} ${kl} ${JSON.stringify(v)}`;
          expect(got.loss, ctx).toBeCloseTo(want.loss, 5);
          for (const k of GRPO_STATS) expect(got.stats[k], `${ctx} ${k}`).toBeCloseTo(want[k], 4);
          sawLow ||= want.clipLowFrac > 0;
          sawHigh ||= want.clipHighFrac > 0;
          sawDual ||= want.dualClipFrac > 0;

          const fd = (arr: Float64Array, i: number) => {
            const e = 1e-6, s = arr[i];
            arr[i] = s + e;
            const up = refGrpo(ref64, o).loss;
            arr[i] = s - e;
            const dn = refGrpo(ref64, o).loss;
            arr[i] = s;
            return (up - dn) / (2 * e);
          };
          for (let i = 0; i < B * T; i++) {
            expect(got.dlogprob[i], `${ctx} dlogprob[${i}]`).toBeCloseTo(fd(ref64.lp, i), 5);
            expect(got.dentropy[i], `${ctx} dentropy[${i}]`).toBeCloseTo(fd(ref64.H, i), 6);
          }
        }
    // the data exercises every clip branch
    expect([sawLow, sawHigh, sawDual]).toEqual([true, true, true]);
  });

  it("gives zero loss, gradients and stats when no token is masked in", () => {
    const x = grpoCase(3, 4, 5);
    const got = grpoLoss({ logprob: x.lp, oldLogprob: x.old, advantages: x.adv, mask: new Float32Array(12) }, { B: 3, T: 4, epsLow: 0.2, epsHigh: 0.2, dualClip: 0, beta: 0, kl: "k3", entropyCoef: 0, tisCap: 0, aggregation: "token-mean" });
    expect(got.loss).toBe(0);
    expect(Array.from(got.dlogprob).every((v) => v === 0)).toBe(true);
    expect(Object.values(got.stats).every((v) => v === 0)).toBe(true);
  });

  it("equals the plain policy gradient -A at ratio 1 (token-mean)", () => {
    const lp = new Float32Array([-1, -2, -3, -0.5]);
    const got = grpoLoss(
      { logprob: lp, oldLogprob: lp, advantages: new Float32Array([2, -1]), mask: new Float32Array([1, 1, 1, 0]) },
      { B: 2, T: 2, epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0, kl: "k1", entropyCoef: 0, tisCap: 0, aggregation: "token-mean" },
    );
    expect(got.loss).toBeCloseTo(-(2 + 2 - 1) / 3, 6);
    expect(Array.from(got.dlogprob)).toEqual([-2 / 3, -2 / 3, 1 / 3, 0].map(Math.fround));
    expect(got.stats.ratioMin).toBe(1);
    expect(got.stats.tokens).toBe(3);
  });

  it("rejects missing optional inputs and bad options", () => {
    const x = grpoCase(2, 3, 1);
    const base: GrpoLossOptions = { B: 2, T: 3, epsLow: 0.2, epsHigh: 0.2, dualClip: 0, beta: 0, kl: "k3", entropyCoef: 0, tisCap: 0, aggregation: "token-mean" };
    const inputs = { logprob: x.lp, oldLogprob: x.old, advantages: x.adv, mask: x.mask };
    expect(() => grpoLoss(inputs, { ...base, beta: 0.1 })).toThrow(/refLogprob is required/);
    expect(() => grpoLoss(inputs, { ...base, tisCap: 2 })).toThrow(/rolloutLogprob is required/);
    expect(() => grpoLoss(inputs, { ...base, entropyCoef: 0.1 })).toThrow(/entropy is required/);
    expect(() => grpoLoss(inputs, { ...base, dualClip: 0.5 })).toThrow(/dualClip/);
    expect(() => grpoLoss(inputs, { ...base, aggregation: "mean" as LossAggregation })).toThrow(/aggregation must be one of/);
    expect(() => grpoLoss({ ...inputs, mask: new Float32Array(5) }, base)).toThrow(/mask has 5 elements, expected 6/);
  });
});

// ---- PyTorch oracle (test/fixtures/make_fused.py) ------------------------------------------------

describe("against PyTorch autograd (fixture)", () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const fx = JSON.parse(readFileSync(join(here, "fixtures", "fused.json"), "utf8"));
  const close = (got: ArrayLike<number>, want: number[], tol: number, what: string) => {
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `${what}[${i}]`).toBeLessThan(tol * Math.max(1, Math.abs(want[i])));
  };

  it("linearLogprob forward and backward", () => {
    const L = fx.linear;
    const dims = { N: L.N, H: L.H, V: L.V, temperature: L.T };
    const hidden = Float32Array.from(L.hidden), weight = Float32Array.from(L.weight), targets = Int32Array.from(L.targets);
    const f = linearLogprob(hidden, weight, targets, dims);
    close(f.logprob, L.logprob, 1e-5, "logprob");
    close(f.entropy, L.entropy, 1e-5, "entropy");
    const g = linearLogprobBackward(Float32Array.from(L.a), Float32Array.from(L.b), hidden, weight, targets, f, dims);
    close(g.dhidden, L.dhidden, 1e-5, "dhidden");
    close(g.dweight, L.dweight, 1e-5, "dweight");
  });

  it("grpoLoss matches the TRL / verl formulation for every aggregation", () => {
    const G = fx.grpo;
    const f32 = (k: string) => Float32Array.from(G[k] as number[]);
    const inputs: GrpoLossInputs = { logprob: f32("logprob"), oldLogprob: f32("oldLogprob"), refLogprob: f32("refLogprob"), rolloutLogprob: f32("rolloutLogprob"), entropy: f32("entropy"), advantages: f32("advantages"), mask: f32("mask") };
    for (const [agg, want] of Object.entries(G.results) as [LossAggregation, { loss: number; dlogprob: number[]; dentropy: number[] }][]) {
      const got = grpoLoss(inputs, { B: G.B, T: G.T, kl: "k3", aggregation: agg, ...G.opts });
      expect(got.loss, agg).toBeCloseTo(want.loss, 5);
      close(got.dlogprob, want.dlogprob, 1e-5, `${agg} dlogprob`);
      close(got.dentropy, want.dentropy, 1e-6, `${agg} dentropy`);
    }
  });
});
