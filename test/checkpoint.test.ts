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
import { fixtureWeights, readModelFixture } from "./helpers/model-fixture.js";
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
      await model.crossEntropyLoss(ids, targets, f.B, f.T);
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
      await m.crossEntropyLoss(ids, targets, f.B, f.T);
      await o.update();
    }
    for (const [n, t] of model.params) expect(read(ck.model.params.get(n)!), n).toEqual(read(t));
  });
});
