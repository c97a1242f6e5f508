// LoRA through `anvil train` (the library entry point): SFT warm start and RL train only the
// adapter, checkpoints hold PEFT adapters, the KL reference is the base without the adapter,
// and a resumed LoRA run reproduces the uninterrupted run's metrics.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { initModel } from "../src/model/init.js";
import { readSafetensors } from "../src/model/safetensors.js";
import { runTraining } from "../src/rl/run.js";
import { resolveCheckpointing } from "../src/rl/train-setup.js";
import { taskCorpus } from "../src/tasks/index.js";

let work: string;
let model: string;

const SMALL = {
  task: "graphla" as const,
  backend: "cpu" as const,
  threads: 1,
  promptsPerStep: 2,
  groupSize: 4,
  maxNewTokens: 16,
  evalN: 4,
  progress: false,
  seed: 5,
  loraR: 4,
  beta: 0.05,
  numIterations: 2,
};

const TIMING = /^(tokens_per_s|time_.*)$/;
const metrics = (run: string): Record<string, number>[] =>
  readFileSync(join(run, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .map((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !TIMING.test(k))) as Record<string, number>);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-lora-train-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: model, seed: 1 });
});

describe("gradient checkpointing setting", () => {
  it("auto turns it on under LoRA above 100M parameters only; explicit settings win", () => {
    expect(resolveCheckpointing("auto", true, 101e6)).toBe(true);
    expect(resolveCheckpointing("auto", true, 99e6)).toBe(false);
    expect(resolveCheckpointing("auto", false, 3e9)).toBe(false);
    expect(resolveCheckpointing(false, true, 3e9)).toBe(false);
    expect(resolveCheckpointing(true, false, 1e6)).toBe(true);
  });
});

describe("LoRA training run", () => {
  it("SFT and RL train and checkpoint only the adapter; resume reproduces the run", async () => {
    const out = join(work, "run");
    const lines: string[] = [];
    await runTraining({ ...SMALL, model, out, steps: 4, checkpointEvery: 2, sftSteps: 3 }, { log: (l) => lines.push(l) });
    // auto: the tiny model (< 100M parameters) runs without checkpointing; the frozen base is bf16 by default under LoRA.
    expect(lines.join("\n")).toMatch(/LoRA r=4 alpha=8 on q,k,v,o,gate,up,down: .* trained, .* frozen \(bf16\); gradient checkpointing off/);
    for (const dir of [join(out, "sft-model"), join(out, "checkpoints", "step-2"), join(out, "checkpoints", "step-4")]) {
      expect(existsSync(join(dir, "adapter_config.json")), dir).toBe(true);
      expect(existsSync(join(dir, "model.safetensors")), dir).toBe(false);
    }
    const cfg = JSON.parse(readFileSync(join(out, "checkpoints", "step-4", "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, base_model_name_or_path: model });
    const opt = await readSafetensors(join(out, "checkpoints", "step-4", "optimizer.safetensors"));
    expect([...opt.keys()].every((n) => /^[mv]\.base_model\.model\.model\.layers\.\d+\..*\.lora_[AB]\.weight$/.test(n))).toBe(true);

    const rl = metrics(out).filter((m) => m.step > 0 && !m.final);
    expect(rl.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    // The SFT-trained adapter already moved the policy away from the base: KL > 0 from step 1.
    for (const m of rl) expect(m.kl).toBeGreaterThan(0);

    // Resume from step 2: the same metrics as the uninterrupted run.
    const resumed = join(work, "resumed");
    cpSync(out, resumed, { recursive: true });
    rmSync(join(resumed, "checkpoints", "step-4"), { recursive: true });
    await runTraining({ resume: resumed }, { log: () => {} });
    expect(metrics(resumed).filter((m) => m.step !== undefined)).toEqual(metrics(out).filter((m) => m.step !== undefined));
  });

  it("a fresh adapter makes the policy equal to the KL reference at step 1", async () => {
    const out = join(work, "fresh");
    // Long enough for Anchor's ground-truth trajectories: their rewards give non-zero advantages.
    const lines: string[] = [];
    await runTraining({ ...SMALL, model, out, steps: 2, sftSteps: 0, numIterations: 1, maxNewTokens: 400, gradientCheckpointing: true }, { log: (l) => lines.push(l) });
    expect(lines.join("\n")).toMatch(/gradient checkpointing on/);
    const rl = metrics(out).filter((m) => m.step > 0 && !m.final);
    expect(rl[0].kl).toBe(0);
    expect(rl[1].kl).toBeGreaterThan(0);
  });

  it("micro-batch and generation-batch sizes change memory, not the run", async () => {
    const run = async (out: string, extra: object) => {
      await runTraining({ ...SMALL, model, out: join(work, out), steps: 2, sftSteps: 2, sftBatch: 5, ...extra }, { log: () => {} });
      return metrics(join(work, out)).filter((m) => m.step > 0 && !m.final);
    };
    const a = await run("batch-default", {});
    const b = await run("batch-small", { microBatch: 3, generationBatch: 3 });
    for (let i = 0; i < a.length; i++) {
      for (const k of ["reward_mean", "acc", "completion_len_mean"]) expect(b[i][k], k).toBe(a[i][k]);
      for (const k of ["loss", "kl", "grad_norm"]) expect(Math.abs(b[i][k] - a[i][k]), k).toBeLessThanOrEqual(1e-4 * Math.abs(a[i][k]) + 1e-7);
    }
    expect(a[1].kl).toBeGreaterThan(0);
  });
});
