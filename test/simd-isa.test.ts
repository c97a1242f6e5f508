// The exp kernels' vector ISAs (native/cpu/softmax_kernels.h): every ISA usable here gives the
// fused log-prob + entropy of a float64 reference, and they agree with each other; the GRPO loss
// (grpo_loss_avx512.cpp mirrors the AVX2 lanes op for op) gives the same gradients bit for bit;
// sampling's distribution under each ISA is checked in sample.test.ts.
import { afterAll, describe, expect, it } from "vitest";
import { grpoLoss, linearLogprob, logprobFromLogits } from "../src/kernels.js";
import { loadAddon } from "../src/backend/native.js";
import { mulberry32 as rng } from "../src/util/rng.js";

const addon = loadAddon();
const isas = addon.buildInfo().simdIsas;
const initial = addon.buildInfo().simdIsa;
afterAll(() => addon.setSimdIsa(initial));

function reference(logits: Float32Array, targets: Int32Array, V: number, temperature: number) {
  const N = targets.length;
  const lp = new Float64Array(N), ent = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const z = Array.from(logits.subarray(i * V, (i + 1) * V), (x) => x / temperature);
    const m = Math.max(...z);
    const s = z.reduce((a, x) => a + Math.exp(x - m), 0);
    const lse = m + Math.log(s);
    lp[i] = z[targets[i]] - lse;
    ent[i] = -z.reduce((a, x) => a + (x === -Infinity ? 0 : Math.exp(x - lse) * (x - lse)), 0);
  }
  return { lp, ent };
}

describe("exp kernels: every vector ISA", () => {
  it("lists avx2 first, and the default is the widest", () => {
    expect(isas[0]).toBe("avx2");
    expect(initial).toBe(isas[isas.length - 1]);
    expect(() => addon.setSimdIsa("sse9")).toThrow(/not available here/);
  });

  // Odd widths leave vector tails; -inf entries, a large offset and rows far below their max
  // exercise the clamp and the underflow to exactly 0.
  const V = 1037, N = 6, r = rng(11);
  const logits = Float32Array.from({ length: N * V }, (_, k) => 4 * (r() - 0.5) + (Math.floor(k / V) === 2 ? 80 : 0));
  for (let k = 0; k < V; k += 7) logits[3 * V + k] = -Infinity;
  for (let k = 0; k < V; k++) logits[4 * V + k] = k === 5 ? 30 : -100 + r();
  const targets = Int32Array.from({ length: N }, (_, i) => (i * 131 + 1) % V);
  const results: Record<string, { logprob: Float32Array; entropy: Float32Array }> = {};

  for (const isa of isas)
    it(`${isa}: log-prob and entropy match float64 at temperature 1 and 0.7`, () => {
      addon.setSimdIsa(isa);
      for (const temperature of [1, 0.7]) {
        const got = logprobFromLogits(logits, targets, { N, V, temperature });
        const ref = reference(logits, targets, V, temperature);
        for (let i = 0; i < N; i++) {
          expect(Math.abs(got.logprob[i] - ref.lp[i]), `row ${i} logprob`).toBeLessThan(2e-4 * Math.max(1, Math.abs(ref.lp[i])));
          expect(Math.abs(got.entropy[i] - ref.ent[i]), `row ${i} entropy`).toBeLessThan(2e-4);
        }
        if (temperature === 1) results[isa] = got;
      }
    });

  it("the ISAs agree with each other (log-prob, entropy, the fused LM head)", () => {
    if (isas.length < 2) return; // one ISA here: nothing to compare
    const [a, b] = isas.map((isa) => results[isa] ?? (addon.setSimdIsa(isa), logprobFromLogits(logits, targets, { N, V })));
    for (let i = 0; i < N; i++) {
      expect(Math.abs(a.logprob[i] - b.logprob[i])).toBeLessThan(2e-5 * Math.max(1, Math.abs(a.logprob[i])));
      expect(Math.abs(a.entropy[i] - b.entropy[i])).toBeLessThan(2e-5);
    }
    const H = 24, Vh = 3001, Nh = 40, r2 = rng(5);
    const hidden = Float32Array.from({ length: Nh * H }, () => r2() - 0.5);
    const weight = Float32Array.from({ length: Vh * H }, () => 2 * (r2() - 0.5));
    const tg = Int32Array.from({ length: Nh }, (_, i) => (i * 977) % Vh);
    const [ha, hb] = isas.map((isa) => (addon.setSimdIsa(isa), linearLogprob(hidden, weight, tg, { N: Nh, H, V: Vh })));
    for (let i = 0; i < Nh; i++) {
      expect(Math.abs(ha.logprob[i] - hb.logprob[i])).toBeLessThan(2e-5 * Math.max(1, Math.abs(ha.logprob[i])));
      expect(Math.abs(ha.entropy[i] - hb.entropy[i])).toBeLessThan(2e-5);
    }
  });

  it("the GRPO loss: the same gradients bit for bit on every ISA, stats within float sums' rounding", () => {
    if (isas.length < 2) return;
    // T = 37: 16- and 8-lane tails; a negative advantage (low and dual clips), a masked-out row
    const B = 5, T = 37, N = B * T, r3 = rng(8);
    const old = Float32Array.from({ length: N }, () => -1.5 + (r3() - 0.5));
    const inputs = {
      logprob: Float32Array.from(old, (v) => v + 1.2 * (r3() - 0.5)),
      oldLogprob: old,
      refLogprob: Float32Array.from(old, (v) => v + 0.3 * (r3() - 0.5)),
      rolloutLogprob: Float32Array.from(old, (v) => v + 0.2 * (r3() - 0.5)),
      entropy: Float32Array.from({ length: N }, () => 2 * r3()),
      advantages: Float32Array.of(1.3, -0.8, 0.4, -2, 0),
      mask: Float32Array.from({ length: N }, (_, i) => (Math.floor(i / T) === 4 || i % T > 30 ? 0 : 1)),
    };
    for (const kl of ["k1", "k2", "k3"] as const) {
      const o = { B, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl, entropyCoef: 0.01, tisCap: 2, aggregation: "seq-mean-token-mean" as const };
      const [a, b] = isas.map((isa) => (addon.setSimdIsa(isa), grpoLoss(inputs, o)));
      expect(b.dlogprob, kl).toEqual(a.dlogprob);
      expect(b.dentropy, kl).toEqual(a.dentropy);
      for (const [k, v] of Object.entries(a.stats)) expect(Math.abs(b.stats[k as keyof typeof a.stats] - v), `${kl} ${k}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(v)));
    }
  });
});
