import type { Command } from "commander";
import { createBackend } from "../../backend/index.js";
import { saveCheckpoint } from "../../model/checkpoint.js";
import { loraConfigOf } from "../../rl/options.js";
import { Policy } from "../../rl/policy.js";
import { runSft } from "../../rl/sft.js";
import { prepareForTraining } from "../../rl/train-setup.js";
import { generate } from "../../tasks/index.js";
import type { TaskName } from "../../tasks/types.js";
import type { FrozenDtype } from "../../model/model.js";
import type { BackendChoice } from "../../backend/backend.js";
import { Progress } from "../../util/progress.js";
import { mixSeed, PURPOSE } from "../../util/seed.js";
import { backendFlags, intArg, log, loraFlags, optionFlag, printJson, taskOption } from "../common.js";

interface SftFlags {
  model: string;
  adapter?: string;
  loraR: number;
  loraAlpha: number;
  loraTargets: string;
  gradientCheckpointing?: boolean;
  frozenDtype: FrozenDtype;
  task: TaskName;
  steps: number;
  batch: number;
  lr: number;
  minDepth: number;
  maxDepth: number;
  seed: number;
  out: string;
  json?: boolean;
  backend: BackendChoice;
  threads: number;
}

export function register(program: Command): void {
  backendFlags(
    loraFlags(
      program
        .command("sft")
        .description("supervised fine-tuning on the task's ground-truth traces (the warm start before RL); writes an HF model directory, or a PEFT adapter directory under LoRA")
        .requiredOption("--model <dir>", "model directory to start from")
        .addOption(taskOption())
        .option("--steps <n>", "optimizer steps", intArg("--steps", 1), 150)
        .addOption(optionFlag("sftBatch", { flag: "--batch", help: "sequences per step", withDefault: true }))
        .addOption(optionFlag("sftLr", { flag: "--lr", help: "peak learning rate (cosine schedule)", withDefault: true }))
        .addOption(optionFlag("minDepth", { withDefault: true }))
        .addOption(optionFlag("maxDepth", { withDefault: true }))
        .addOption(optionFlag("seed", { help: "data seed", withDefault: true }))
        .requiredOption("--out <dir>", "output directory (a model, or an adapter under LoRA)")
        .option("--json", "print the loss curve as one JSON object"),
    ),
  ).action(async (o: SftFlags) => {
    if (o.minDepth > o.maxDepth) throw new Error(`--min-depth (${o.minDepth}) must be <= --max-depth (${o.maxDepth})`);
    if (o.adapter && o.loraR) throw new Error(`--adapter ${o.adapter} carries its own rank, alpha and targets: drop --lora-r`);
    const lora = loraConfigOf(o);
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { frozenDtype: lora || o.adapter ? o.frozenDtype : "f32" });
    await prepareForTraining(policy.model, { adapter: o.adapter ?? "", lora, seed: o.seed, gradientCheckpointing: o.gradientCheckpointing ?? "auto", frozenDtype: o.frozenDtype }, log);
    const bar = new Progress("sft", o.steps);
    const losses = await runSft(policy, {
      steps: o.steps,
      lr: o.lr,
      batch: o.batch,
      instances: (s, j) => generate(o.task, { depth: o.minDepth + (mixSeed(o.seed, s, j, PURPOSE.sft, 1) % (o.maxDepth - o.minDepth + 1)), seed: mixSeed(o.seed, s, j, PURPOSE.sft) }),
      onStep: (s, loss) => bar.update(s + 1, { loss }),
    });
    bar.done();
    await saveCheckpoint(o.out, policy.model, { tokenizerDir: o.model, baseModel: o.model });
    log(`sft: loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}; wrote ${o.out}${policy.model.adapter ? " (LoRA adapter)" : ""}`);
    if (o.json) printJson({ out: o.out, losses });
    policy.model.dispose();
    backend.destroy();
  });
}
