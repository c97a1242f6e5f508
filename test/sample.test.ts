// The fused sampler is exact in distribution: chi-square goodness of fit against the truncated,
// tempered distribution computed in float64 here, for every filter and their combinations, on
// skewed and flat logits. A negative control shows the test rejects a slightly wrong
// distribution. Seeds are fixed, so the outcome is deterministic.
import { afterAll, describe, expect, it } from "vitest";
import { sample, type SampleOptions } from "../src/kernels.js";
import { loadAddon } from "../src/backend/native.js";
import { mulberry32 as rng } from "../src/util/rng.js";

function normals(n: number, seed: number, scale: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

// ---- statistics ---------------------------------------------------------------------------------

function gammaln(x: number): number {
  const c = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const ci of c) ser += ci / ++y;
  return -tmp + Math.log((2.5066282746310005 * ser) / x);
}
/** Upper regularised incomplete gamma Q(a, x) (Numerical Recipes gser / gcf). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lg = gammaln(a);
  if (x < a + 1) {
    let sum = 1 / a, del = sum, ap = a;
    for (let n = 0; n < 10000; n++) {
      del *= x / ++ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - lg);
  }
  let b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - lg) * h;
}

/**
 * Chi-square goodness-of-fit p-value of observed token ids against probabilities p.
 * Bins with expected count < 5 are pooled. A draw of a token with p = 0 returns p-value 0.
 */
function chiSquareP(ids: Int32Array, p: Float64Array): number {
  const n = ids.length;
  const counts = new Float64Array(p.length);
  for (const id of ids) {
    if (!(p[id] > 0)) return 0;
    counts[id]++;
  }
  let stat = 0, bins = 0, pooledObs = 0, pooledExp = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    const e = n * p[i];
    if (e < 5) {
      pooledObs += counts[i];
      pooledExp += e;
      continue;
    }
    stat += (counts[i] - e) ** 2 / e;
    bins++;
  }
  if (pooledExp > 0) {
    stat += (pooledObs - pooledExp) ** 2 / pooledExp;
    bins++;
  }
  if (bins <= 1) return 1; // one possible outcome, already checked above
  return gammaQ((bins - 1) / 2, stat / 2);
}

// ---- reference distribution ---------------------------------------------------------------------

/** The truncated tempered distribution in float64, by sorting (the reference may sort). */
function truncated(logits: Float32Array, o: SampleOptions): Float64Array {
  const V = logits.length;
  const p = new Float64Array(V);
  let imax = 0;
  for (let i = 1; i < V; i++) if (logits[i] > logits[imax]) imax = i;
  if (o.greedy || o.temperature <= 0) {
    p[imax] = 1;
    return p;
  }
  const m = logits[imax] / o.temperature;
  const q = Float64Array.from(logits, (x) => Math.exp(x / o.temperature - m));
  let thr = 0;
  if (o.topK > 0 && o.topK < V) thr = Float64Array.from(q).sort().reverse()[o.topK - 1];
  if (o.topP < 1) {
    const kept = Array.from(q).filter((v) => v >= thr).sort((a, b) => b - a);
    const need = o.topP * kept.reduce((s, v) => s + v, 0);
    let cum = 0;
    for (let j = 0; j < kept.length; j++) {
      cum += kept[j];
      if (cum >= need && (j + 1 === kept.length || kept[j + 1] < kept[j])) {
        thr = Math.max(thr, kept[j]);
        break;
      }
    }
  }
  if (o.minP > 0) thr = Math.max(thr, o.minP);
  let total = 0;
  for (let i = 0; i < V; i++) if (q[i] >= thr) total += q[i];
  for (let i = 0; i < V; i++) p[i] = q[i] >= thr ? q[i] / total : 0;
  return p;
}

/** n draws from one logits row, as rows of a batch with seeds seed0, seed0+1, ... */
function draw(row: Float32Array, o: SampleOptions, n: number, seed0 = 1): Int32Array {
  const V = row.length;
  const chunk = Math.max(1, Math.min(n, Math.floor(4_000_000 / V)));
  const out = new Int32Array(n);
  const batch = new Float32Array(chunk * V);
  for (let b = 0; b < chunk; b++) batch.set(row, b * V);
  for (let done = 0; done < n; done += chunk) {
    const B = Math.min(chunk, n - done);
    const seeds = Uint32Array.from({ length: B }, (_, i) => seed0 + done + i);
    out.set(sample(batch.subarray(0, B * V), { B, V }, o, seeds), done);
  }
  return out;
}

const OFF: SampleOptions = { temperature: 1, topK: 0, topP: 1, minP: 0 };
const P_MIN = 1e-4;

// The exp loops run on every vector ISA usable here (native/cpu/softmax_kernels.h); the default last.
const addon = loadAddon();
const ISAS = addon.buildInfo().simdIsas;
afterAll(() => addon.setSimdIsa(ISAS[ISAS.length - 1]));

for (const isa of ISAS)
describe(`sample (${isa}): exact in distribution (chi-square, p > 1e-4)`, () => {
  const configs: [string, Partial<SampleOptions>][] = [
    ["greedy", { greedy: true }],
    ["temperature 0", { temperature: 0 }],
    ["temperature 1", {}],
    ["temperature 0.6", { temperature: 0.6 }],
    ["top-k", { topK: 5 }],
    ["top-k large", { topK: 999, temperature: 0.7 }],
    ["top-p 0.9", { topP: 0.9 }],
    ["top-p 0.5", { topP: 0.5, temperature: 1.3 }],
    ["min-p 0.1", { minP: 0.1 }],
    ["top-k + top-p + temperature", { topK: 20, topP: 0.8, temperature: 0.8 }],
    ["top-p + min-p", { topP: 0.95, minP: 0.05, temperature: 1.2 }],
  ];
  for (const V of [2, 50, 1000]) {
    for (const [kind, scale] of [["skewed", 3], ["flat", 0.1]] as const) {
      it(`V=${V} ${kind} logits`, () => {
        addon.setSimdIsa(isa);
        const row = normals(V, V * 7 + scale, scale);
        const n = V === 1000 ? 40_000 : 20_000;
        for (const [name, opts] of configs) {
          const o: SampleOptions = { ...OFF, ...opts, topK: Math.min(opts.topK ?? 0, V === 2 ? 1 : V) };
          const ids = draw(row, o, n);
          const p = truncated(row, o);
          expect(chiSquareP(ids, p), `${name} V=${V} ${kind}`).toBeGreaterThan(P_MIN);
        }
      });
    }
  }

  it("negative controls: a slightly wrong distribution is rejected", () => {
    addon.setSimdIsa(isa);
    const row = normals(50, 99, 2);
    const o: SampleOptions = { ...OFF, topP: 0.9 };
    const ids = draw(row, o, 20_000);
    expect(chiSquareP(ids, truncated(row, o))).toBeGreaterThan(P_MIN);
    // temperature 10% off
    expect(chiSquareP(ids, truncated(row, { ...o, temperature: 1.1 }))).toBeLessThan(P_MIN);
    // the nucleus one token too large (top-p 0.95 keeps more tokens than 0.9)
    expect(chiSquareP(ids, truncated(row, { ...o, topP: 0.95 }))).toBeLessThan(P_MIN);
    // one probability moved by 0.01 between two tokens
    const p = truncated(row, o);
    const [a, b] = [p.indexOf(Math.max(...p)), 7];
    const shifted = p.slice();
    shifted[a] -= 0.01;
    shifted[b] += 0.01;
    expect(p[b]).toBeGreaterThan(0);
    expect(chiSquareP(ids, shifted)).toBeLessThan(P_MIN);
  });

  it("V=151936 (Qwen vocabulary): kept set and top-token frequencies", () => {
    addon.setSimdIsa(isa);
    const V = 151936;
    // Zipf-like logits in a random order: a long tail as in a real LM.
    const r = rng(5);
    const perm = Array.from({ length: V }, (_, i) => i);
    for (let i = V - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const row = new Float32Array(V);
    for (let k = 0; k < V; k++) row[perm[k]] = -1.3 * Math.log(k + 1) + 0.01 * (r() - 0.5);
    for (const o of [
      { ...OFF, topP: 0.9, temperature: 0.9 },
      { ...OFF, topK: 200, topP: 0.8, minP: 0.002 },
    ]) {
      const ids = draw(row, o, 1500, 1000);
      const p = truncated(row, o);
      const kept = p.reduce((s, v) => s + Number(v > 0), 0);
      expect(kept).toBeGreaterThan(20);
      for (const id of ids) expect(p[id], `token ${id} outside the kept set`).toBeGreaterThan(0);
      // Top 15 tokens as their own bins, the rest of the kept set pooled.
      const order = Array.from(p.keys()).sort((x, y) => p[y] - p[x]).slice(0, 15);
      const binOf = new Map(order.map((id, i) => [id, i]));
      const pb = new Float64Array(16);
      p.forEach((v, i) => (pb[binOf.get(i) ?? 15] += v));
      const binned = Int32Array.from(ids, (id) => binOf.get(id) ?? 15);
      expect(chiSquareP(binned, pb), JSON.stringify(o)).toBeGreaterThan(P_MIN);
    }
  });
});

describe("sample: determinism and edge cases", () => {
  const V = 100;
  const row = normals(V, 3, 2);
  const batch = new Float32Array(4 * V);
  for (let b = 0; b < 4; b++) batch.set(row, b * V);

  it("the same seed gives the same token; different seeds differ", () => {
    const o = { ...OFF, topP: 0.95 };
    const seeds = new Uint32Array([5, 6, 7, 8]);
    const a = sample(batch, { B: 4, V }, o, seeds);
    expect(sample(batch, { B: 4, V }, o, seeds)).toEqual(a);
    const many = draw(row, o, 64, 100);
    expect(new Set(many).size).toBeGreaterThan(3);
    expect(draw(row, o, 64, 100)).toEqual(many);
  });

  it("off values are exactly off: topK >= V, topK 0, topP 1, minP 0 give identical draws", () => {
    const seeds = Uint32Array.from({ length: 4 }, (_, i) => 40 + i);
    const base = sample(batch, { B: 4, V }, OFF, seeds);
    expect(sample(batch, { B: 4, V }, { ...OFF, topK: V }, seeds)).toEqual(base);
    expect(sample(batch, { B: 4, V }, { ...OFF, topK: V + 7 }, seeds)).toEqual(base);
  });

  it("greedy and temperature <= 0 return the first maximum; topK 1 is argmax", () => {
    const l = new Float32Array([0.5, 2, -1, 2, 1]);
    expect(sample(l, { B: 1, V: 5 }, { ...OFF, greedy: true })[0]).toBe(1);
    expect(sample(l, { B: 1, V: 5 }, { ...OFF, temperature: 0 })[0]).toBe(1);
    expect(sample(l, { B: 1, V: 5 }, { ...OFF, temperature: -1 })[0]).toBe(1);
    const l2 = new Float32Array([0.5, 3, -1, 2, 1]);
    expect(new Set(draw(l2, { ...OFF, topK: 1 }, 50))).toEqual(new Set([1]));
  });

  it("keeps every tie at a top-k / top-p boundary (flat logits stay uniform)", () => {
    const flat = new Float32Array(50);
    for (const o of [{ ...OFF, topK: 3 }, { ...OFF, topP: 0.1 }]) {
      const ids = draw(flat, o, 10_000);
      expect(chiSquareP(ids, new Float64Array(50).fill(1 / 50))).toBeGreaterThan(P_MIN);
    }
  });

  it("-inf logits are never drawn; NaN, +inf and all -inf rows throw naming the row", () => {
    const l = normals(20, 4, 1);
    for (let i = 0; i < 20; i += 2) l[i] = -Infinity;
    for (const id of draw(l, OFF, 2000)) expect(id % 2).toBe(1);
    const bad = (v: number, all = false) => {
      const b = new Float32Array(3 * 20);
      b.set(normals(60, 1, 1));
      if (all) b.fill(-Infinity, 20, 40);
      else b[25] = v;
      return () => sample(b, { B: 3, V: 20 }, OFF, new Uint32Array(3));
    };
    expect(bad(NaN)).toThrow(/row 1 contains NaN/);
    expect(bad(Infinity)).toThrow(/row 1 contains \+inf/);
    expect(bad(0, true)).toThrow(/row 1 is all -inf/);
    const greedyNaN = new Float32Array([1, NaN]);
    expect(() => sample(greedyNaN, { B: 1, V: 2 }, { ...OFF, greedy: true })).toThrow(/NaN/);
  });

  it("validates arguments", () => {
    expect(() => sample(batch, { B: 3, V }, OFF)).toThrow(/logits has 400 elements, expected 300/);
    expect(() => sample(batch, { B: 4, V }, { ...OFF, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => sample(batch, { B: 4, V }, { ...OFF, minP: 2 })).toThrow(/minP/);
    expect(() => sample(batch, { B: 4, V }, { ...OFF, topK: 1.5 })).toThrow(/topK must be an integer/);
    expect(() => sample(batch, { B: 4, V }, OFF, new Uint32Array(3))).toThrow(/seeds has 3 elements/);
  });
});
