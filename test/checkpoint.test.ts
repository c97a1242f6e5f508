// Checkpoints: save -> load restores parameters, optimizer moments, step and trainer state
// bit-identically; writes are atomic (no half-written directory, replace works).
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CpuBackend } from "../src/backend/cpu.js";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.js";
import { Model } from "../src/model/model.js";
import { AdamW } from "../src/model/optim.js";
import { fixtureWeights, lmLoss, readModelFixture } from "./helpers/model-fixture.js";
import { testBackend } from "./helpers/naive-ops.js";

const here = dirname(fileURLToPath(import.meta.url));
let be: CpuBackend;
let root: string;
beforeAll(async () => {
  be = testBackend().backend;
  root = await mkdtemp(join(tmpdir(), "anvil-ckpt-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const read = (t: unknown) => be.readSync(t as never) as Float32Array;

describe.each(["qwen3", "qwen2"])("%s checkpoint", (name) => {
  it("round-trips model, optimizer and trainer state bit-identically", async () => {
    const f = readModelFixture(join(here, "fixtures", `model_${name}.bin`));
    const ids = f.tensors.get("ids")!.data as Int32Array;
    const targets = f.tensors.get("targets")!.data as Int32Array;
    const model = Model.fromWeights(be, f.config, fixtureWeights(f));
    const opt = new AdamW(model, { lr: 1e-2, warmupSteps: 1, totalSteps: 10 });
    for (let s = 0; s < 2; s++) {
      model.zeroGrads();
      await lmLoss(model, ids, targets, f.B, f.T);
      await opt.update();
    }
    const tokDir = join(root, `tok-${name}`);
    await rm(tokDir, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(tokDir, { recursive: true }));
    await writeFile(join(tokDir, "tokenizer.json"), '{"fake": true}');
    const dir = join(root, `step-${name}`);
    const trainerState = { step: 2, rng: { s: [1, 2, 3, 4294967295], spareNormal: 0.1 + 0.2 }, note: "x" };
    await saveCheckpoint(dir, model, { optimizer: await opt.exportState(), trainerState, tokenizerDir: tokDir });
    // Saving again over an existing checkpoint replaces it atomically.
    await saveCheckpoint(dir, model, { optimizer: await opt.exportState(), trainerState, tokenizerDir: tokDir });
    const entries = await readdir(root);
    expect(entries.filter((e) => e.includes(".tmp-") || e.includes(".old-"))).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(["config.json", "model.safetensors", "optimizer.json", "optimizer.safetensors", "tokenizer.json", "trainer_state.json"]);

    const ck = await loadCheckpoint(dir, be);
    for (const k of ["architecture", "vocabSize", "hiddenSize", "numLayers", "numHeads", "numKvHeads", "headDim", "tieWordEmbeddings", "attentionBias", "qkNorm", "ropeTheta", "rmsNormEps"] as const)
      expect(ck.config[k], k).toEqual(f.config[k]);
    for (const [n, t] of model.params) expect(read(ck.model.params.get(n)!), n).toEqual(read(t));
    expect(ck.trainerState).toEqual(trainerState);
    expect(ck.optimizer!.step).toBe(2);
    const opt2 = new AdamW(ck.model, { lr: 1e-2, warmupSteps: 1, totalSteps: 10 });
    opt2.loadState(ck.optimizer!);
    // One more identical step on both: still bit-identical.
    for (const [m, o] of [[model, opt], [ck.model, opt2]] as const) {
      m.zeroGrads();
      await lmLoss(m, ids, targets, f.B, f.T);
      await o.update();
    }
    for (const [n, t] of model.params) expect(read(ck.model.params.get(n)!), n).toEqual(read(t));
  });
});

describe("interrupted saves", () => {
  it("a crash between moving the old checkpoint aside and renaming the new one is recovered", async () => {
    const { rename, cp } = await import("node:fs/promises");
    const f = readModelFixture(join(here, "fixtures", "model_llama.bin"));
    const model = Model.fromWeights(be, f.config, fixtureWeights(f));
    const dir = join(root, "crash");
    await saveCheckpoint(dir, model, { trainerState: { step: 1 } });
    await saveCheckpoint(join(root, "crash-new"), model, { trainerState: { step: 2 } });
    // State after the crash: <dir> moved to .old-77, the complete new one still at .tmp-77.
    await rename(dir, `${dir}.old-77`);
    await cp(join(root, "crash-new"), `${dir}.tmp-77`, { recursive: true });
    expect((await loadCheckpoint(dir, be)).trainerState).toEqual({ step: 2 });
    expect((await readdir(root)).filter((e) => e.startsWith("crash."))).toEqual([]);
    // Only the old copy left: it is put back.
    await rename(dir, `${dir}.old-78`);
    expect((await loadCheckpoint(dir, be)).trainerState).toEqual({ step: 2 });
  });
});

describe("end to end on an init-model directory", () => {
  it("loads, learns a sequence by SFT, generates it greedily, checkpoints and resumes", async () => {
    const { initModel } = await import("../src/model/init.js");
    const { Tokenizer } = await import("../src/model/tokenizer.js");
    const { generate } = await import("../src/model/generate.js");
    const corpus = ["The soup costs 3 more than the bread.", "<answer>unknown</answer>", "A costs 4. B costs twice A."];
    const src = join(root, "init");
    await initModel({ preset: "tiny", corpus, out: src, seed: 3 });
    const ck0 = await loadCheckpoint(src, be);
    expect(ck0.optimizer).toBeNull();
    expect(ck0.trainerState).toBeNull();
    const tok = await Tokenizer.load(src);
    const model = ck0.model;
    const seq = tok.encode("A costs 4. B costs twice A.");
    const T = seq.length - 1;
    const ids = Int32Array.from(seq.slice(0, T));
    const targets = Int32Array.from(seq.slice(1));
    const opt = new AdamW(model, { lr: 3e-3, schedule: "constant" });
    let loss = 0;
    for (let s = 0; s < 40; s++) {
      model.zeroGrads();
      loss = (await lmLoss(model, ids, targets, 1, T)).loss;
      await opt.update();
    }
    console.log(`tiny model: ${model.numParameters} params, SFT loss after 40 steps ${loss.toFixed(4)}`);
    expect(loss).toBeLessThan(0.1);
    const greedy = { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true };
    const [g] = await generate(model, [seq.slice(0, 3)], { maxNewTokens: seq.length - 3, sampling: greedy, seed: 0, eosIds: model.config.eosTokenIds });
    expect(tok.decode(g.tokens)).toBe(tok.decode(seq.slice(3)));

    const dir = join(root, "e2e-step-40");
    await saveCheckpoint(dir, model, { optimizer: await opt.exportState(), tokenizerDir: src, trainerState: { step: 40 } });
    const ck = await loadCheckpoint(dir, be);
    expect((await Tokenizer.load(dir)).encode("A costs 4.")).toEqual(tok.encode("A costs 4."));
    for (const [n, t] of model.params) expect(read(ck.model.params.get(n)!), n).toEqual(read(t));
    expect(ck.optimizer!.step).toBe(40);
  });
});
