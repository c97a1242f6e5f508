// The one-pass fused linear GRPO loss (linearGrpoLoss) against the composition it replaces
// (linearLogprobForward + grpoLoss + scale + linearLogprobBackward), finite differences of its
// dhidden, webgpu against cpu, and the trainer's policy / SFT gradients through both paths.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPO_STATS, type Backend, type LinearGrpoLossOptions, type LossAggregation } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { linearGrpoLossComposed } from "../src/backend/linear-grpo-composed.js";
import { WebGpuBackend } from "../src/backend/webgpu/index.js";
import { roundToBf16 } from "../src/backend/bf16.js";
import { initModel } from "../src/model/init.js";
import { packBatch } from "../src/rl/batch.js";
import { Policy } from "../src/rl/policy.js";
import { policyGradient, supervisedGradient } from "../src/rl/step.js";
import { generate, taskCorpus } from "../src/tasks/index.js";
import * as kernels from "../src/kernels.js";
import { mulberry32 as rng } from "../src/util/rng.js";

let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  console.warn(`webgpu linearGrpoLoss tests skipped: ${(e as Error).message}`);
}
afterAll(() => gpu?.destroy());

const cpu = new CpuBackend();

function normals(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

/** max |got - want| over max |want|: the error normalised by the tensor's scale. */
function normErr(got: ArrayLike<number>, want: ArrayLike<number>, rows?: (i: number) => boolean): number {
  let d = 0, s = 1e-30;
  for (let i = 0; i < want.length; i++) {
    if (rows && !rows(i)) continue;
    d = Math.max(d, Math.abs(got[i] - want[i]));
    s = Math.max(s, Math.abs(want[i]));
  }
  return d / s;
}

interface Case {
  B: number;
  T: number;
  H: number;
  V: number;
  hidden: Float32Array;
  weight: Float32Array;
  targets: Int32Array;
  mask: Float32Array;
  adv: Float32Array;
  old: Float32Array;
  ref: Float32Array;
  roll: Float32Array;
}

/** Random inputs; old / ref / rollout log-probs near the model's own so every clip branch occurs. */
function makeCase(B: number, T: number, H: number, V: number, seed: number, spread = 0.3): Case {
  const r = rng(seed);
  const N = B * T;
  const hidden = normals(N * H, seed + 1, 1.5);
  const weight = normals(V * H, seed + 2, 0.5);
  const mask = new Float32Array(N);
  const targets = new Int32Array(N).fill(-1);
  for (let b = 0; b < B; b++) {
    const len = b === 1 && B > 2 ? 0 : 1 + Math.floor(r() * T); // one empty sequence
    for (let t = 0; t < T; t++) {
      targets[b * T + t] = t < len ? Math.floor(r() * V) : r() < 0.5 ? -1 : Math.floor(r() * V);
      if (t < len) mask[b * T + t] = 1;
    }
  }
  if (B > 2) targets[0] = -1; // a masked-in row without a target
  const lpT = cpu.zeros([N]);
  cpu.linearLogprobForward(lpT, cpu.zeros([N]), cpu.zeros([N]), cpu.upload(hidden, [N, H]), cpu.upload(weight, [V, H]), cpu.upload(targets, [N]), 0.8);
  const lpNow = cpu.readSync(lpT) as Float32Array;
  const n1 = normals(N, seed + 3, spread), n2 = normals(N, seed + 4, 0.2), n3 = normals(N, seed + 5, 0.2);
  const old = Float32Array.from(lpNow, (v, i) => v + n1[i]);
  const ref = Float32Array.from(lpNow, (v, i) => v + n2[i]);
  const roll = Float32Array.from(old, (v, i) => v + n3[i]);
  return { B, T, H, V, hidden, weight, targets, mask, adv: normals(B, seed + 6), old, ref, roll };
}

interface Use {
  old: boolean;
  ref: boolean;
  roll: boolean;
}
interface Out {
  dhidden: Float32Array;
  dweight: Float32Array;
  stats: Float32Array;
  logprob: Float32Array;
  entropy: Float32Array;
}

async function run(be: Backend, x: Case, use: Use, o: LinearGrpoLossOptions, composed: boolean, temperature = 0.8): Promise<Out> {
  const N = x.B * x.T;
  const t = {
    dhidden: be.upload(normals(N * x.H, 99), [N, x.H]), // overwritten
    dweight: be.upload(normals(x.V * x.H, 98, 0.01), [x.V, x.H]), // accumulated into
    stats: be.zeros([GRPO_STATS.length]),
    logprob: be.zeros([N]),
    entropy: be.zeros([N]),
  };
  const args = [
    t.dhidden, t.dweight, t.stats, t.logprob, t.entropy, be.upload(x.hidden, [N, x.H]), be.upload(x.weight, [x.V, x.H]), be.upload(x.targets, [N]),
    use.old ? be.upload(x.old, [N]) : null, use.ref ? be.upload(x.ref, [N]) : null, use.roll ? be.upload(x.roll, [N]) : null,
    be.upload(x.adv, [x.B]), be.upload(x.mask, [N]), temperature, o,
  ] as const;
  if (composed) linearGrpoLossComposed(be, ...args);
  else be.linearGrpoLoss(...args);
  const rd = async (k: keyof typeof t) => (await be.read(t[k])) as Float32Array;
  return { dhidden: await rd("dhidden"), dweight: await rd("dweight"), stats: await rd("stats"), logprob: await rd("logprob"), entropy: await rd("entropy") };
}

function expectSame(got: Out, want: Out, x: Case, tol: number, ctx: string): void {
  const inLoss = (i: number) => x.mask[i] !== 0;
  expect(normErr(got.dhidden, want.dhidden), `${ctx} dhidden`).toBeLessThan(tol);
  expect(normErr(got.dweight, want.dweight), `${ctx} dweight`).toBeLessThan(tol);
  expect(normErr(got.logprob, want.logprob, inLoss), `${ctx} logprob`).toBeLessThan(tol);
  expect(normErr(got.entropy, want.entropy, inLoss), `${ctx} entropy`).toBeLessThan(tol);
  GRPO_STATS.forEach((k, i) => expect(Math.abs(got.stats[i] - want.stats[i]), `${ctx} ${k}: ${got.stats[i]} vs ${want.stats[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want.stats[i]))));
}

const AGGS: LossAggregation[] = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"];
const VARIANTS: { use: Use; o: Omit<LinearGrpoLossOptions, "B" | "T" | "aggregation"> }[] = [
  { use: { old: true, ref: false, roll: false }, o: { epsLow: 0.2, epsHigh: 0.28, dualClip: 0, beta: 0, kl: "k3", entropyCoef: 0, tisCap: 0 } },
  { use: { old: true, ref: true, roll: true }, o: { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0.01, tisCap: 2, lossScale: 0.37 } },
  { use: { old: false, ref: true, roll: false }, o: { epsLow: 0.2, epsHigh: 0.2, dualClip: 0, beta: 0.1, kl: "k2", entropyCoef: 0.003, tisCap: 0 } },
  { use: { old: true, ref: true, roll: true }, o: { epsLow: 0.1, epsHigh: 0.1, dualClip: 1.6, beta: 0.02, kl: "k1", entropyCoef: 0, tisCap: 1.3, lossScale: 2.5 } },
  { use: { old: false, ref: false, roll: true }, o: { epsLow: 0.2, epsHigh: 0.2, dualClip: 0, beta: 0, kl: "k3", entropyCoef: 0.02, tisCap: 1.5 } },
];

describe("linearGrpoLoss (cpu) against the two-pass composition", () => {
  it("agrees for every aggregation, with and without old / ref / rollout, dual clip, TIS, entropy bonus, masked rows", async () => {
    const x = makeCase(6, 9, 20, 301, 11);
    for (const aggregation of AGGS)
      for (const [vi, v] of VARIANTS.entries()) {
        const o: LinearGrpoLossOptions = { ...v.o, aggregation, B: x.B, T: x.T, maxCompletionLength: 12 };
        const [got, want] = [await run(cpu, x, v.use, o, false), await run(cpu, x, v.use, o, true)];
        expectSame(got, want, x, 1e-5, `${aggregation} variant ${vi}`);
        if (!v.use.old) expect(got.stats[GRPO_STATS.indexOf("ratioMax")]).toBe(1);
      }
  });

  it("takes a frozen head: no dweight and a bf16 weight give the f32 run on the rounded weight", async () => {
    const x = makeCase(3, 7, 16, 257, 21);
    const o: LinearGrpoLossOptions = { ...VARIANTS[1].o, aggregation: "token-mean", B: x.B, T: x.T };
    const want = await run(cpu, { ...x, weight: roundToBf16(x.weight) }, VARIANTS[1].use, o, true);
    for (const be of [cpu, ...(gpu ? [gpu] : [])]) {
      const N = x.B * x.T;
      const [dh, st, lp, ent] = [be.zeros([N, x.H]), be.zeros([GRPO_STATS.length]), be.zeros([N]), be.zeros([N])];
      be.linearGrpoLoss(dh, null, st, lp, ent, be.upload(x.hidden, [N, x.H]), be.upload(x.weight, [x.V, x.H], "bf16"), be.upload(x.targets, [N]),
        be.upload(x.old, [N]), be.upload(x.ref, [N]), be.upload(x.roll, [N]), be.upload(x.adv, [x.B]), be.upload(x.mask, [N]), 0.8, o);
      const rd = async (t: typeof dh) => (await be.read(t)) as Float32Array;
      const got: Out = { dhidden: await rd(dh), dweight: want.dweight, stats: await rd(st), logprob: await rd(lp), entropy: await rd(ent) };
      expectSame(got, want, x, 1e-4, `${be.name} frozen bf16 head`);
    }
  });

  it("agrees across token blocks and vocab tiles (V = 20000), with clip branches all taken", async () => {
    const x = makeCase(4, 110, 16, 20000, 5, 0.6);
    x.adv.set([1, 0.5, -1, 0.8]); // sequence 1 is empty
    // the other sequences full: 329 rows with a target, two token blocks (at most 256 rows)
    for (let i = 1; i < x.B * x.T; i++) if (Math.floor(i / x.T) !== 1) [x.mask[i], x.targets[i]] = [1, x.targets[i] < 0 ? i % x.V : x.targets[i]];
    const o: LinearGrpoLossOptions = { ...VARIANTS[1].o, aggregation: "seq-mean-token-mean", B: x.B, T: x.T };
    const [got, want] = [await run(cpu, x, VARIANTS[1].use, o, false), await run(cpu, x, VARIANTS[1].use, o, true)];
    expectSame(got, want, x, 1e-5, "large V");
    for (const k of ["clipLowFrac", "clipHighFrac", "dualClipFrac"] as const) expect(want.stats[GRPO_STATS.indexOf(k)], k).toBeGreaterThan(0);
  });

  it("is deterministic and leaves dhidden 0 on rows outside the loss", async () => {
    const x = makeCase(4, 7, 8, 50, 3);
    const o: LinearGrpoLossOptions = { ...VARIANTS[1].o, aggregation: "token-mean", B: x.B, T: x.T };
    const [a, b] = [await run(cpu, x, VARIANTS[1].use, o, false), await run(cpu, x, VARIANTS[1].use, o, false)];
    expect(a).toEqual(b);
    for (let i = 0; i < x.B * x.T; i++)
      if (x.mask[i] === 0 || x.targets[i] < 0) expect(a.dhidden.subarray(i * x.H, (i + 1) * x.H).every((v) => v === 0)).toBe(true);
  });

  it("gives zero loss, gradients and stats when no token is in the loss", async () => {
    const x = makeCase(3, 4, 6, 20, 8);
    x.mask.fill(0);
    const o: LinearGrpoLossOptions = { ...VARIANTS[0].o, aggregation: "token-mean", B: x.B, T: x.T };
    const got = await run(cpu, x, VARIANTS[0].use, o, false);
    expect(got.dhidden.every((v) => v === 0)).toBe(true);
    expect(got.stats.every((v) => v === 0)).toBe(true);
  });

  it("rejects missing inputs and bad shapes", () => {
    const x = makeCase(2, 3, 4, 10, 1);
    const N = 6;
    const t = (n: number) => cpu.zeros([n]);
    const o: LinearGrpoLossOptions = { ...VARIANTS[1].o, aggregation: "token-mean", B: 2, T: 3 };
    const call = (oo: LinearGrpoLossOptions, hiddenRows = N, ref = true) =>
      cpu.linearGrpoLoss(cpu.zeros([hiddenRows, 4]), cpu.zeros([10, 4]), t(GRPO_STATS.length), t(N), t(N), cpu.upload(new Float32Array(hiddenRows * 4), [hiddenRows, 4]), cpu.upload(x.weight, [10, 4]), cpu.upload(x.targets, [N]), null, ref ? t(N) : null, t(N), t(2), t(N), 1, oo);
    expect(() => call(o)).not.toThrow();
    expect(() => call(o, N, false)).toThrow(/refLogprob is required/);
    expect(() => call(o, N + 1)).toThrow(RangeError);
    expect(() => call({ ...o, lossScale: NaN })).toThrow(/lossScale/);
  });
});

describe("anvil-rl/kernels linearGrpoLoss", () => {
  it("equals linearLogprob + grpoLoss + linearLogprobBackward on host arrays", () => {
    const x = makeCase(4, 6, 12, 97, 31);
    const o = { ...VARIANTS[1].o, aggregation: "token-mean" as const, B: x.B, T: x.T };
    const got = kernels.linearGrpoLoss({ hidden: x.hidden, weight: x.weight, targets: x.targets, oldLogprob: x.old, refLogprob: x.ref, rolloutLogprob: x.roll, advantages: x.adv, mask: x.mask }, { ...o, H: x.H, V: x.V, temperature: 0.8 });
    const dims = { N: x.B * x.T, H: x.H, V: x.V, temperature: 0.8 };
    const fwd = kernels.linearLogprob(x.hidden, x.weight, x.targets, dims);
    const loss = kernels.grpoLoss({ logprob: fwd.logprob, oldLogprob: x.old, refLogprob: x.ref, rolloutLogprob: x.roll, entropy: fwd.entropy, advantages: x.adv, mask: x.mask }, o);
    const scale = (a: Float32Array) => a.map((v) => v * o.lossScale!);
    const bwd = kernels.linearLogprobBackward(scale(loss.dlogprob), scale(loss.dentropy), x.hidden, x.weight, x.targets, fwd, dims);
    expect(got.loss).toBeCloseTo(loss.loss, 6);
    expect(normErr(got.dhidden, bwd.dhidden)).toBeLessThan(1e-5);
    expect(normErr(got.dweight, bwd.dweight)).toBeLessThan(1e-5);
    for (const k of GRPO_STATS) expect(Math.abs(got.stats[k] - loss.stats[k]), k).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(loss.stats[k])));
  });
});

describe("linearGrpoLoss gradient", () => {
  it("dhidden and dweight match finite differences of lossScale * loss", async () => {
    const x = makeCase(2, 3, 5, 7, 21, 0.03); // ratios near 1: no clip kink within the step
    const o: LinearGrpoLossOptions = { epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0.05, kl: "k3", entropyCoef: 0.02, tisCap: 2, aggregation: "seq-mean-token-mean", B: 2, T: 3, lossScale: 0.5 };
    const use = { old: true, ref: true, roll: true };
    const base = await run(cpu, x, use, o, false, 1);
    const dweight0 = normals(x.V * x.H, 98, 0.01);
    const loss = async (y: Case) => (await run(cpu, y, use, o, false, 1)).stats[0] * 0.5;
    const fd = async (arr: Float32Array, i: number) => {
      const e = 3e-3, s = arr[i];
      arr[i] = s + e;
      const up = await loss(x);
      arr[i] = s - e;
      const dn = await loss(x);
      arr[i] = s;
      return (up - dn) / (2 * e);
    };
    const dweight = base.dweight.map((v, i) => v - dweight0[i]);
    const scale = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const [sh, sw] = [scale(base.dhidden), scale(dweight)];
    for (let i = 0; i < x.hidden.length; i++) expect(Math.abs(base.dhidden[i] - (await fd(x.hidden, i))), `dhidden[${i}]`).toBeLessThan(2e-3 * sh);
    for (let i = 0; i < x.weight.length; i += 2) expect(Math.abs(dweight[i] - (await fd(x.weight, i))), `dweight[${i}]`).toBeLessThan(2e-3 * sw);
  });
});

describe.skipIf(!gpu)("linearGrpoLoss on webgpu", () => {
  it("matches the cpu op", async () => {
    const x = makeCase(5, 8, 24, 333, 17);
    for (const [vi, v] of VARIANTS.entries()) {
      const o: LinearGrpoLossOptions = { ...v.o, aggregation: AGGS[vi % AGGS.length], B: x.B, T: x.T };
      expectSame(await run(gpu!, x, v.use, o, false), await run(cpu, x, v.use, o, false), x, 1e-4, `webgpu variant ${vi}`);
    }
  });

  it("matches the cpu op across token blocks (V = 60000: 128-row blocks)", async () => {
    const x = makeCase(4, 50, 8, 60000, 23);
    const o: LinearGrpoLossOptions = { ...VARIANTS[1].o, aggregation: "seq-mean-token-sum", B: x.B, T: x.T };
    expectSame(await run(gpu!, x, VARIANTS[1].use, o, false), await run(cpu, x, VARIANTS[1].use, o, false), x, 1e-4, "webgpu blocks");
  });
});

describe("the trainer's gradients through one pass and two", () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(mkdtempSync(join(tmpdir(), "anvil-lgl-")), "model");
    await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 100), out: dir, seed: 5 });
  });

  async function grads(twoPass: boolean, run: (p: Policy) => Promise<unknown>) {
    const p = await Policy.load(dir, cpu);
    p.model.zeroGrads();
    const result = await run(p);
    const g = new Map<string, Float32Array>();
    for (const [name, t] of p.model.grads) g.set(name, cpu.readSync(t) as Float32Array);
    p.model.dispose();
    return { result, g, twoPass };
  }

  function expectSameGrads(a: Map<string, Float32Array>, b: Map<string, Float32Array>) {
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, ga] of a) expect(normErr(ga, b.get(name)!), name).toBeLessThan(1e-5);
  }

  const batchOf = (p: Policy) =>
    packBatch(
      Array.from({ length: 5 }, (_, j) => {
        const inst = generate("graphli", { depth: 1, seed: 3 + j });
        return { promptIds: p.encodePrompt(inst.prompt), completionIds: p.encodeCompletion(`<think>${inst.trace}</think><answer>${inst.answer}</answer>`).slice(0, 20 + 7 * j) };
      }),
      p.padId,
    );

  for (const aggregation of ["token-mean", "seq-mean-token-mean"] as const)
    it(`policyGradient (${aggregation}, micro-batches of 2, old / ref / rollout log-probs)`, async () => {
      const step = (twoPass: boolean) =>
        grads(twoPass, async (p) => {
          const batch = batchOf(p);
          const N = batch.B * batch.T;
          const old = Float32Array.from({ length: N }, (_, i) => (batch.mask[i] ? -3 - 0.1 * (i % 7) : 0));
          const ref = Float32Array.from({ length: N }, (_, i) => (batch.mask[i] ? -3 + 0.05 * (i % 5) : 0));
          batch.rolloutLogprobs.set(old.map((v, i) => v + 0.02 * (i % 3)));
          return policyGradient(
            p.model,
            { batch, oldLogprob: old, refLogprob: ref, advantages: Float32Array.from([1, -1, 0.5, -0.5, 0.2]), useRolloutLogprob: true },
            { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0.01, tisCap: 2, aggregation },
            0.9,
            2,
            { twoPass },
          );
        });
      const [one, two] = [await step(false), await step(true)];
      expectSameGrads(one.g, two.g);
      const [s1, s2] = [one.result as Record<string, number>, two.result as Record<string, number>];
      for (const k of GRPO_STATS) expect(Math.abs(s1[k] - s2[k]), k).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(s2[k])));
    });

  it("policyGradient does not depend on the rows' order or the micro-batch size (per-row inputs follow their rows)", async () => {
    const run = (reverse: boolean, microBatch: number) =>
      grads(false, async (p) => {
        const seqs = Array.from({ length: 5 }, (_, j) => {
          const inst = generate("graphli", { depth: 1, seed: 3 + j });
          const n = 20 + 7 * j;
          return { promptIds: p.encodePrompt(inst.prompt), completionIds: p.encodeCompletion(`<think>${inst.trace}</think>`).slice(0, n), rolloutLogprobs: Array.from({ length: n }, (_, t) => -2 - 0.01 * ((t * (j + 1)) % 13)) };
        });
        const adv = [1, -1, 0.5, -0.5, 0.2];
        const order = reverse ? [4, 3, 2, 1, 0] : [0, 1, 2, 3, 4];
        const batch = packBatch(order.map((j) => seqs[j]!), p.padId);
        // Old and reference log-probs are functions of each token's rollout log-prob, so they follow the token.
        const ref = batch.rolloutLogprobs.map((v) => v + 0.1 * Math.sin(7 * v));
        return policyGradient(
          p.model,
          { batch, oldLogprob: batch.rolloutLogprobs.map((v) => v + 0.05), refLogprob: ref, advantages: Float32Array.from(order, (j) => adv[j]!), useRolloutLogprob: true },
          { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0.01, tisCap: 2, aggregation: "seq-mean-token-mean" },
          0.9,
          microBatch,
        );
      });
    const [a, b] = [await run(false, 2), await run(true, 16)];
    expectSameGrads(a.g, b.g);
    for (const k of GRPO_STATS) expect((a.result as Record<string, number>)[k], k).toBeCloseTo((b.result as Record<string, number>)[k], 5);
  });

  it("padding costs nothing: a mixed-length batch's gradient is the token-weighted sum of each row's alone", async () => {
    // One row per batch has no padding at all, so this holds the micro-batching (rows regrouped
    // by length and cut to their own length) to the unpadded computation.
    const together = await grads(false, (p) => supervisedGradient(p.model, batchOf(p), 16));
    const alone = await grads(false, async (p) => {
      const batch = batchOf(p);
      const rows = Array.from({ length: batch.B }, (_, b) => {
        const ids = [...batch.ids.subarray(b * batch.T, (b + 1) * batch.T)];
        const first = batch.targets.subarray(b * batch.T, (b + 1) * batch.T).findIndex((t) => t >= 0);
        const n = batch.mask.subarray(b * batch.T, (b + 1) * batch.T).reduce((a, m) => a + m, 0);
        return packBatch([{ promptIds: ids.slice(0, first + 1), completionIds: ids.slice(first + 1, first + 1 + n) }], p.padId);
      });
      // supervisedGradient normalises by its own tokens: weight each row by its share.
      const sum = new Map<string, Float32Array>();
      let loss = 0;
      for (const r of rows) {
        p.model.zeroGrads();
        const w = r.tokens / batch.tokens;
        loss += (await supervisedGradient(p.model, r, 1)) * w;
        for (const [k, t] of p.model.grads) {
          const acc = sum.get(k) ?? sum.set(k, new Float32Array(t.size)).get(k)!;
          (cpu.readSync(t) as Float32Array).forEach((g, i) => (acc[i] += g * w));
        }
      }
      for (const [k, t] of p.model.grads) cpu.write(t, sum.get(k)!);
      expect(rows.map((r) => r.T).sort()).not.toEqual(Array(rows.length).fill(batch.T));
      return loss;
    });
    expectSameGrads(together.g, alone.g);
    expect(Math.abs((together.result as number) - (alone.result as number))).toBeLessThan(1e-5 * Math.abs(alone.result as number));
  });

  it("policyGradient without old log-probs (ratio 1) and supervisedGradient", async () => {
    const pg = (twoPass: boolean) =>
      grads(twoPass, (p) =>
        policyGradient(
          p.model,
          { batch: batchOf(p), oldLogprob: null, refLogprob: null, advantages: Float32Array.from([1, -1, 0.5, -0.5, 0.2]), useRolloutLogprob: false },
          { epsLow: 0.2, epsHigh: 0.28, dualClip: 0, beta: 0, kl: "k3", entropyCoef: 0, tisCap: 0, aggregation: "dr-grpo", maxCompletionLength: 64 },
          1,
          3,
          { twoPass },
        ),
      );
    const [a, b] = [await pg(false), await pg(true)];
    expectSameGrads(a.g, b.g);
    const sft = (twoPass: boolean) => grads(twoPass, (p) => supervisedGradient(p.model, batchOf(p), 2, { twoPass }));
    const [c, d] = [await sft(false), await sft(true)];
    expectSameGrads(c.g, d.g);
    expect(Math.abs((c.result as number) - (d.result as number))).toBeLessThan(1e-5 * Math.abs(d.result as number));
  });
});
