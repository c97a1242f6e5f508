// Frozen weights stored in bf16 (--frozen-dtype bf16): the host rounding, the bf16 variants of
// the CPU kernels (matmul's b, the embedding table, the fused linear log-prob weight) against
// the f32 kernels on the same bf16-rounded values, and a LoRA model whose base is stored in bf16
// against the f32 model with its weights rounded to bf16 (log-probs, adapter gradients, bytes).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bf16BitsToF32, f32ToBf16Bits, roundToBf16 } from "../src/backend/bf16.js";
import { CpuBackend } from "../src/backend/cpu.js";
import type { Tensor } from "../src/backend/backend.js";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.js";
import { LoraAdapter } from "../src/model/lora.js";
import { Model } from "../src/model/model.js";
import { batchFromTargets } from "../src/rl/batch.js";
import { scoreTokens } from "../src/rl/step.js";
import { prepareForTraining } from "../src/rl/train-setup.js";
import { fixtureAdapterWeights, fixtureWeights, lmLoss, readModelFixture } from "./helpers/model-fixture.js";
import { rand, randInt } from "./helpers/reference-ops.js";

const here = dirname(fileURLToPath(import.meta.url));
let be: CpuBackend;
let selectedBefore = "";
beforeAll(() => {
  be = new CpuBackend({ threads: 2 });
  selectedBefore = be.native.gemmSelected();
});
afterAll(() => be.native.setGemm(selectedBefore));

const read = (t: Tensor) => be.readSync(t) as Float32Array;
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const maxAbs = (a: ArrayLike<number>) => Array.prototype.reduce.call(a, (m: number, x: number) => Math.max(m, Math.abs(x)), 0) as number;

describe("bf16 on the host", () => {
  it("rounds to nearest even, keeps NaN and infinities, widens exactly", () => {
    const x = Float32Array.of(1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, Infinity, -Infinity, NaN, 3.4e38, 0, -0);
    const bits = f32ToBf16Bits(x);
    expect([...bits.slice(0, 5)]).toEqual([0x3f80, 0xc020, 0x3f80, 0x3f82, 0x3f81]);
    const back = bf16BitsToF32(bits);
    expect([...back.slice(5, 7)]).toEqual([Infinity, -Infinity]);
    expect(Number.isNaN(back[7])).toBe(true);
    expect(back[8]).toBe(Infinity); // above the largest bf16: rounds to infinity, as torch does
    expect(Object.is(back[10], -0)).toBe(true);
    const r = rand(1000, 3);
    expect(maxAbsDiff(roundToBf16(roundToBf16(r)), roundToBf16(r))).toBe(0);
    for (let i = 0; i < r.length; i++) expect(Math.abs(roundToBf16(r)[i] - r[i])).toBeLessThanOrEqual(Math.abs(r[i]) * 2 ** -8);
  });
});

describe("bf16 kernels against the f32 kernels on rounded values", () => {
  // Odd shapes: both micro-tiles' edges, a K past one KC block, the few-row (decode) path.
  const shapes: [number, number, number][] = [
    [37, 53, 29],
    [13, 33, 259],
    [150, 97, 300],
    [5, 70, 33],
    [1, 19, 7],
  ];
  it.each(shapes)("matmul (%i, %i, %i): b bf16 = b rounded in f32, every built-in candidate, both layouts", (M, N, K) => {
    const a = rand(M * K, M);
    const bHost = rand(K * N, N);
    const bRounded = roundToBf16(bHost);
    for (const transB of [true, false]) {
      const shapeB = transB ? [N, K] : [K, N];
      const b16 = be.upload(bHost, shapeB, "bf16");
      expect(b16.dtype).toBe("bf16");
      expect(b16.bytes).toBe(2 * K * N);
      expect(maxAbsDiff(read(b16), bRounded)).toBe(0);
      const at = be.upload(a, [M, K]);
      const init = rand(M * N, 5);
      for (const accumulate of [false, true]) {
        const got = be.upload(init, [M, N]);
        const want = be.upload(init, [M, N]);
        be.matmul(got, at, b16, { transB, accumulate, alpha: 0.75 });
        be.matmul(want, at, be.upload(bRounded, shapeB), { transB, accumulate, alpha: 0.75 });
        const scale = maxAbs(read(want));
        expect(maxAbsDiff(read(got), read(want)), `transB ${transB} accumulate ${accumulate}`).toBeLessThanOrEqual(1e-6 * scale);
      }
      // Each built-in candidate by name, against its own f32 kernel on the rounded values.
      for (const name of be.native.gemmCandidates().filter((c) => c !== "openblas")) {
        const got = new Float32Array(M * N);
        const want = new Float32Array(M * N);
        be.native.matmulWith(name, got, a, f32ToBf16Bits(bHost), M, N, K, false, transB, false, 1, 1);
        be.native.matmulWith(name, want, a, bRounded, M, N, K, false, transB, false, 1, 0);
        expect(maxAbsDiff(got, want), `${name} transB ${transB}`).toBeLessThanOrEqual(1e-6 * maxAbs(want));
      }
    }
  });

  it("a bf16 matmul runs on a built-in kernel when OpenBLAS is the selected sgemm; OpenBLAS alone refuses bf16", () => {
    const names = be.native.gemmCandidates();
    if (!names.includes("openblas")) return;
    const [M, N, K] = [40, 30, 20];
    const a = rand(M * K, 1);
    const b = rand(N * K, 2);
    expect(() => be.native.matmulWith("openblas", new Float32Array(M * N), a, f32ToBf16Bits(b), M, N, K, false, true, false, 1, 1)).toThrow(RangeError);
    be.native.setGemm("openblas");
    try {
      const out = be.zeros([M, N]);
      be.matmul(out, be.upload(a, [M, K]), be.upload(b, [N, K], "bf16"), { transB: true });
      const want = new Float32Array(M * N);
      be.native.matmulWith("avx2", want, a, roundToBf16(b), M, N, K, false, true, false, 1, 0);
      expect(maxAbsDiff(read(out), want)).toBeLessThanOrEqual(1e-6 * maxAbs(want));
    } finally {
      be.native.setGemm(selectedBefore);
    }
  });

  it("bf16 is accepted only where a weight is read: as an output or an activation it is a TypeError", () => {
    const w = be.upload(rand(12, 1), [3, 4], "bf16");
    const x = be.upload(rand(8, 2), [2, 4]);
    expect(() => be.matmul(be.zeros([3, 2]), w, x, { transB: true })).toThrow(TypeError);
    expect(() => be.matmul(w, be.upload(rand(6, 3), [3, 2]), be.upload(rand(8, 4), [2, 4]))).toThrow(TypeError);
    expect(() => be.scale(w, 2)).toThrow(TypeError);
  });

  it("embedding gather from a bf16 table", () => {
    const [V, C, N] = [50, 37, 23];
    const table = rand(V * C, 4);
    const ids = be.upload(randInt(N, 5, 0, V), [N]);
    const got = be.zeros([N, C]);
    const want = be.zeros([N, C]);
    be.embeddingForward(got, ids, be.upload(table, [V, C], "bf16"));
    be.embeddingForward(want, ids, be.upload(roundToBf16(table), [V, C]));
    expect(maxAbsDiff(read(got), read(want))).toBe(0);
  });

  it.each([
    [19, 24, 70],
    [300, 40, 2100], // several token blocks and vocab tiles
  ])("linear log-prob with a bf16 weight (N %i, H %i, V %i): forward, dHidden; no dW when dweight is null", (N, H, V) => {
    const hidden = be.upload(rand(N * H, 6), [N, H]);
    const wHost = rand(V * H, 7, -0.3, 0.3);
    const targets = randInt(N, 8, 0, V);
    targets[3] = -1;
    const tg = be.upload(targets, [N]);
    const run = (w: Tensor, withDw: boolean) => {
      const [lp, ent, lse] = [be.zeros([N]), be.zeros([N]), be.zeros([N])];
      be.linearLogprobForward(lp, ent, lse, hidden, w, tg, 0.9);
      const dlp = be.upload(rand(N, 9), [N]);
      const dent = be.upload(rand(N, 10, -0.1, 0.1), [N]);
      const dh = be.zeros([N, H]);
      const dw = withDw ? be.zeros([V, H]) : null;
      be.linearLogprobBackward(dh, dw, dlp, dent, hidden, w, tg, lse, ent, 0.9);
      return { lp: read(lp), ent: read(ent), dh: read(dh), dw: dw ? read(dw) : null };
    };
    const got = run(be.upload(wHost, [V, H], "bf16"), false);
    const want = run(be.upload(roundToBf16(wHost), [V, H]), true);
    const withDw = run(be.upload(wHost, [V, H], "bf16"), true);
    expect(maxAbsDiff(got.lp, want.lp)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(got.ent, want.ent)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(got.dh, want.dh)).toBeLessThanOrEqual(1e-5 * maxAbs(want.dh));
    expect(maxAbsDiff(withDw.dh, got.dh)).toBeLessThanOrEqual(1e-6 * maxAbs(want.dh));
    expect(maxAbsDiff(withDw.dw!, want.dw!)).toBeLessThanOrEqual(1e-5 * maxAbs(want.dw!));
  });
});

describe.each(["qwen3_lora", "qwen2_lora"])("%s with its base stored in bf16", (name) => {
  const f = readModelFixture(join(here, "fixtures", `model_${name}.bin`));
  const ids = f.tensors.get("ids")!.data as Int32Array;
  const targets = f.tensors.get("targets")!.data as Int32Array;
  const adapterOf = () => LoraAdapter.fromWeights(be, f.config, { ...f.lora! }, fixtureAdapterWeights(f));
  /** The fixture model with its adapter; its frozen matrices in bf16, or in f32 rounded to bf16 or not. */
  async function load(kind: "bf16" | "f32-rounded" | "f32"): Promise<Model> {
    const weights = fixtureWeights(f);
    const probe = Model.fromWeights(be, f.config, weights);
    const frozen = probe.frozenMatrixNames();
    probe.dispose();
    if (kind === "f32-rounded") for (const n of frozen) weights.set(n, roundToBf16(weights.get(n)!));
    const model = Model.fromWeights(be, f.config, weights);
    model.attachAdapter(adapterOf());
    if (kind === "bf16") await model.storeFrozenAs("bf16");
    return model;
  }
  const scores = async (m: Model) => (await scoreTokens(m, batchFromTargets(ids, targets, f.B, f.T), 1, f.B)).logprob;

  it("per-token log-probs: those of the f32 model with rounded weights to ~1e-5, off the unrounded ones at bf16 level", async () => {
    const [m16, rounded, exact] = [await load("bf16"), await load("f32-rounded"), await load("f32")];
    expect(m16.frozenDtype).toBe("bf16");
    const [s16, sr, se] = [await scores(m16), await scores(rounded), await scores(exact)];
    const dRounded = maxAbsDiff(s16, sr);
    const dExact = maxAbsDiff(s16, se);
    console.log(`${name}: max |logprob diff| bf16 vs f32-rounded ${dRounded.toExponential(2)}, vs f32 ${dExact.toExponential(2)}`);
    expect(dRounded).toBeLessThanOrEqual(1e-5);
    expect(dExact).toBeGreaterThan(1e-5); // the rounding did happen ...
    expect(dExact).toBeLessThan(0.05); // ... and costs what bf16 weights cost (2^-9 relative per weight)
  });

  it("LoRA training: the same adapter gradients as the f32 base rounded to bf16; frozen bytes halve", async () => {
    const [m16, rounded] = [await load("bf16"), await load("f32-rounded")];
    const l16 = await lmLoss(m16, ids, targets, f.B, f.T);
    const lr = await lmLoss(rounded, ids, targets, f.B, f.T);
    expect(Math.abs(l16.loss - lr.loss)).toBeLessThanOrEqual(1e-5);
    for (const [pname, g] of rounded.adapter!.grads) {
      const want = read(g);
      expect(maxAbsDiff(read(m16.adapter!.grad(pname)), want), pname).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-7);
    }
    expect(m16.grads.size).toBe(0);
    let frozenElems = 0;
    for (const n of m16.frozenMatrixNames()) frozenElems += m16.params.get(n)!.size;
    expect(rounded.parameterBytes - m16.parameterBytes).toBe(2 * frozenElems);
    console.log(`${name}: parameter bytes f32 ${rounded.parameterBytes}, bf16 frozen ${m16.parameterBytes}`);
  });

  it("back to f32 exactly; the base cannot be trained or merged while stored in bf16", async () => {
    const m = await load("bf16");
    const rounded = await load("f32-rounded");
    const a = m.detachAdapter()!;
    const acts = m.forward(ids, f.B, f.T); // inference on a bf16 base works without the adapter
    expect(() => m.backward(acts, be.zeros([f.B * f.T, f.config.hiddenSize]))).toThrow(/bf16/);
    acts.dispose();
    await expect(m.storeFrozenAs("bf16")).rejects.toThrow(/adapter/);
    m.attachAdapter(a);
    expect(() => m.mergeAdapter()).toThrow(/bf16/);
    await m.storeFrozenAs("f32");
    expect(m.frozenDtype).toBe("f32");
    for (const n of m.frozenMatrixNames()) expect(maxAbsDiff(read(m.params.get(n)!), read(rounded.params.get(n)!)), n).toBe(0);
    m.mergeAdapter();
  });
});

describe("loading a LoRA base", () => {
  it("loadCheckpoint uploads the frozen matrices straight to bf16: the rounded values, norms in f32", async () => {
    const f = readModelFixture(join(here, "fixtures", "model_qwen2_lora.bin"));
    const dir = await mkdtemp(join(tmpdir(), "anvil-bf16-"));
    try {
      const m32 = Model.fromWeights(be, f.config, fixtureWeights(f));
      await saveCheckpoint(join(dir, "m"), m32);
      const { model } = await loadCheckpoint(join(dir, "m"), be, { frozenDtype: "bf16" });
      const frozen = new Set(model.frozenMatrixNames());
      for (const [name, t] of model.params) {
        expect(t.dtype, name).toBe(frozen.has(name) ? "bf16" : "f32");
        const want = read(m32.params.get(name)!);
        expect(maxAbsDiff(read(t), frozen.has(name) ? roundToBf16(want) : want), name).toBe(0);
      }
      expect((await loadCheckpoint(join(dir, "m"), be)).model.frozenDtype).toBe("f32");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("prepareForTraining", () => {
  it("stores the base in --frozen-dtype under LoRA, and never without LoRA", async () => {
    const f = readModelFixture(join(here, "fixtures", "model_qwen3_lora.bin"));
    const lines: string[] = [];
    const lora = { r: 4, alpha: 8, targets: ["q" as const, "v" as const] };
    const base = { adapter: "", seed: 1, gradientCheckpointing: false as const };
    const m1 = Model.fromWeights(be, f.config, fixtureWeights(f));
    await prepareForTraining(m1, { ...base, lora, frozenDtype: "bf16" }, (l) => lines.push(l));
    expect(m1.frozenDtype).toBe("bf16");
    expect(lines.join("\n")).toMatch(/frozen \(bf16\)/);
    const m2 = Model.fromWeights(be, f.config, fixtureWeights(f));
    await prepareForTraining(m2, { ...base, lora, frozenDtype: "f32" }, () => {});
    expect(m2.frozenDtype).toBe("f32");
    const m3 = Model.fromWeights(be, f.config, fixtureWeights(f));
    await prepareForTraining(m3, { ...base, lora: null, frozenDtype: "bf16" }, () => {});
    expect(m3.frozenDtype).toBe("f32");
  });
});
