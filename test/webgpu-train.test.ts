// A short training run on WebGPU follows the CPU run's loss curve: SFT steps and GRPO steps
// from the same initial weights on the same batches (skipped, with the reason, without an adapter).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { WebGpuBackend } from "../src/backend/webgpu/index.js";
import { initModel } from "../src/model/init.js";
import { AdamW } from "../src/model/optim.js";
import { packBatch } from "../src/rl/batch.js";
import { Policy } from "../src/rl/policy.js";
import { runSft } from "../src/rl/sft.js";
import { policyGradient } from "../src/rl/step.js";
import { generate, taskCorpus } from "../src/tasks/index.js";

let gpu: WebGpuBackend | null = null;
try {
  gpu = await WebGpuBackend.create();
} catch (e) {
  console.warn(`webgpu training test skipped: ${(e as Error).message}`);
}
let dir: string;
beforeAll(async () => {
  if (!gpu) return;
  dir = join(mkdtempSync(join(tmpdir(), "anvil-wgt-")), "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 100), out: dir, seed: 5 });
});
afterAll(() => gpu?.destroy());

async function sftCurve(be: Backend): Promise<number[]> {
  const p = await Policy.load(dir, be);
  const losses = await runSft(p, { steps: 6, lr: 3e-3, batch: 4, instances: (s, j) => generate("graphli", { depth: 1, seed: 100 * s + j }) });
  p.model.dispose();
  return losses;
}

async function grpoCurve(be: Backend): Promise<number[]> {
  const p = await Policy.load(dir, be);
  const opt = new AdamW(p.model, { lr: 1e-3, schedule: "constant" });
  const losses: number[] = [];
  for (let s = 0; s < 4; s++) {
    // Fixed completions (ground-truth-like text) with fixed advantages: a deterministic GRPO batch.
    const seqs = Array.from({ length: 4 }, (_, j) => {
      const inst = generate("graphli", { depth: 1, seed: 7 * s + j });
      return { promptIds: p.encodePrompt(inst.prompt), completionIds: p.encodeCompletion(`<think>${inst.trace}</think><answer>${inst.answer}</answer>`) };
    });
    const batch = packBatch(seqs, p.padId);
    const old = new Float32Array(batch.B * batch.T).map((_, i) => (batch.mask[i] ? -2 - 0.01 * (i % 7) : 0));
    p.model.zeroGrads();
    const st = await policyGradient(
      p.model,
      { batch, oldLogprob: old, refLogprob: null, advantages: Float32Array.from([1, -1, 0.5, -0.5]), useRolloutLogprob: false },
      { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0, kl: "k3", entropyCoef: 0.01, tisCap: 0, aggregation: "token-mean" },
      1,
      4,
    );
    await opt.update();
    losses.push(st.loss);
  }
  opt.dispose();
  p.model.dispose();
  return losses;
}

describe.skipIf(!gpu)("training on webgpu", () => {
  it("SFT loss curve matches the cpu backend", async () => {
    const cpu = new CpuBackend();
    const [a, b] = [await sftCurve(cpu), await sftCurve(gpu!)];
    console.log(`sft loss cpu    ${a.map((x) => x.toFixed(5)).join(" ")}\nsft loss webgpu ${b.map((x) => x.toFixed(5)).join(" ")}`);
    expect(a[a.length - 1]).toBeLessThan(a[0]); // it trains
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(a[i])));
  });

  it("GRPO loss curve matches the cpu backend", async () => {
    const cpu = new CpuBackend();
    const [a, b] = [await grpoCurve(cpu), await grpoCurve(gpu!)];
    console.log(`grpo loss cpu    ${a.map((x) => x.toFixed(6)).join(" ")}\ngrpo loss webgpu ${b.map((x) => x.toFixed(6)).join(" ")}`);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(2e-3 * Math.max(1, Math.abs(a[i])));
  });
});
