// AdamW, clipping and the LR schedule, against a float64 TS reference; a short SFT run.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import type { CpuBackend } from "../src/backend/cpu.js";
import { Model } from "../src/model/model.js";
import { AdamW, learningRate, resolveAdamWConfig } from "../src/model/optim.js";
import { fixtureWeights, lmLoss, readModelFixture } from "./helpers/model-fixture.js";
import { testBackend } from "./helpers/naive-ops.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixture = readModelFixture(join(here, "fixtures", "model_qwen2.bin"));
const ids = fixture.tensors.get("ids")!.data as Int32Array;
const targets = fixture.tensors.get("targets")!.data as Int32Array;

let be: CpuBackend;
beforeAll(() => {
  be = testBackend().backend;
});
const read = (t: unknown) => be.readSync(t as never) as Float32Array;
const newModel = () => Model.fromWeights(be, fixture.config, fixtureWeights(fixture));

describe("learning-rate schedule", () => {
  it("warms up linearly then decays by cosine to minLr", () => {
    const c = resolveAdamWConfig({ lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 });
    expect(learningRate(1, c)).toBeCloseTo(1e-4, 12);
    expect(learningRate(10, c)).toBeCloseTo(1e-3, 12);
    expect(learningRate(60, c)).toBeCloseTo(5.5e-4, 12);
    expect(learningRate(110, c)).toBeCloseTo(1e-4, 12);
    expect(learningRate(500, c)).toBeCloseTo(1e-4, 12);
    for (let s = 11; s < 110; s++) expect(learningRate(s + 1, c)).toBeLessThanOrEqual(learningRate(s, c));
  });
  it("linear and constant schedules", () => {
    const lin = resolveAdamWConfig({ lr: 1, schedule: "linear", totalSteps: 4 });
    expect([1, 2, 3, 4].map((s) => learningRate(s, lin))).toEqual([0.75, 0.5, 0.25, 0]);
    const con = resolveAdamWConfig({ lr: 0.1, schedule: "constant", warmupSteps: 2 });
    expect([1, 2, 3, 99].map((s) => learningRate(s, con))).toEqual([0.05, 0.1, 0.1, 0.1]);
  });
  it("rejects bad options with the option name", () => {
    expect(() => resolveAdamWConfig({ lr: 1e-3 })).toThrow(/totalSteps/);
    expect(() => resolveAdamWConfig({ lr: 1e-3, schedule: "constant", beta2: 1 })).toThrow(/beta2/);
    expect(() => resolveAdamWConfig({ lr: 1e-3, schedule: "constant", minLr: 1 })).toThrow(/minLr/);
    expect(() => resolveAdamWConfig({ lr: 1e-3, schedule: "bogus" as never })).toThrow(/schedule/);
  });
});

describe("AdamW", () => {
  it("matches a float64 reference, with clipping and decay only on matrices", async () => {
    const model = newModel();
    await lmLoss(model, ids, targets, fixture.B, fixture.T);
    const cfg = { lr: 1e-2, weightDecay: 0.1, schedule: "constant" as const, maxGradNorm: 0.5, beta2: 0.95 };
    const opt = new AdamW(model, cfg);
    const before = new Map([...model.params].map(([n, t]) => [n, read(t)]));
    const grads = new Map([...model.grads].map(([n, t]) => [n, read(t)]));
    let ss = 0;
    for (const g of grads.values()) for (const x of g) ss += x * x;
    const norm = Math.sqrt(ss);
    expect(norm).toBeGreaterThan(0.5);
    const r = await opt.update();
    expect(r.gradNorm).toBeCloseTo(norm, 4);
    expect(r.clipped).toBe(true);
    expect(r.lr).toBe(1e-2);
    const s = 0.5 / (norm + 1e-6);
    let maxDiff = 0;
    for (const [name, p0] of before) {
      const g = grads.get(name)!;
      const p = read(model.params.get(name)!);
      const wd = model.params.get(name)!.shape.length >= 2 ? 0.1 : 0;
      for (let i = 0; i < p0.length; i++) {
        const gi = g[i] * s;
        const m = (1 - 0.9) * gi;
        const v = (1 - 0.95) * gi * gi;
        const upd = m / (1 - 0.9) / (Math.sqrt(v / (1 - 0.95)) + 1e-8);
        const want = p0[i] - 1e-2 * (upd + wd * p0[i]);
        maxDiff = Math.max(maxDiff, Math.abs(p[i] - want));
      }
    }
    console.log(`AdamW step vs float64 reference: max|diff| ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it("skips the update when the gradient norm is not finite", async () => {
    const model = newModel();
    await lmLoss(model, ids, targets, fixture.B, fixture.T);
    const g = model.grad("model.norm.weight");
    be.write(g, Float32Array.of(NaN), 0);
    const opt = new AdamW(model, { lr: 1, schedule: "constant" });
    const p0 = read(model.params.get("model.norm.weight")!);
    const r = await opt.update();
    expect(r.skipped).toBe(true);
    expect(opt.step).toBe(0);
    expect(read(model.params.get("model.norm.weight")!)).toEqual(p0);
  });

  it("exported state resumes bit-identically", async () => {
    const a = newModel();
    const b = newModel();
    const cfg = { lr: 3e-3, warmupSteps: 2, totalSteps: 10 };
    const optA = new AdamW(a, cfg);
    for (let s = 0; s < 3; s++) {
      a.zeroGrads();
      await lmLoss(a, ids, targets, fixture.B, fixture.T);
      await optA.update();
    }
    const state = await optA.exportState();
    expect(state.step).toBe(3);
    const weights = await a.exportWeights();
    for (const [n, t] of b.params) be.write(t, weights.get(n)!.data);
    const optB = new AdamW(b, cfg);
    optB.loadState(state);
    for (const [m, opt] of [[a, optA], [b, optB]] as const) {
      m.zeroGrads();
      await lmLoss(m, ids, targets, fixture.B, fixture.T);
      await opt.update();
    }
    for (const [n, t] of a.params) expect(read(b.params.get(n)!), n).toEqual(read(t));
  });

  it("a few SFT steps overfit one batch", async () => {
    const model = newModel();
    const opt = new AdamW(model, { lr: 1e-2, schedule: "constant" });
    const losses: number[] = [];
    for (let s = 0; s < 8; s++) {
      model.zeroGrads();
      losses.push((await lmLoss(model, ids, targets, fixture.B, fixture.T, { checkpointing: s % 2 === 1 })).loss);
      await opt.update();
    }
    console.log(`SFT losses: ${losses.map((l) => l.toFixed(3)).join(" ")}`);
    expect(losses[7]).toBeLessThan(losses[0] * 0.7);
  });
});
