import type { Command } from "commander";
import { Option } from "commander";
import { createBackend } from "../../backend/index.js";
import { saveCheckpoint } from "../../model/checkpoint.js";
import { Policy } from "../../rl/policy.js";
import { backendFlags, log, printJson } from "../common.js";

export function register(program: Command): void {
  backendFlags(
    program
      .command("merge")
      .description("fold a LoRA adapter into its base model (W + alpha/r B A) and write a full HF model directory (PEFT's merge_and_unload)")
      .requiredOption("--model <dir>", "base model directory")
      .requiredOption("--adapter <dir>", "PEFT LoRA adapter directory")
      .requiredOption("--out <dir>", "output model directory")
      .addOption(new Option("--dtype <dtype>", "storage dtype of model.safetensors").choices(["f32", "bf16", "f16"]).default("f32"))
      .option("--json", "print one JSON object"),
  ).action(async (o: { model: string; adapter: string; out: string; dtype: "f32" | "bf16" | "f16"; json?: boolean; backend: "auto"; threads: number }) => {
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    const { r, alpha, targets } = policy.model.adapter!.config;
    policy.model.mergeAdapter();
    await saveCheckpoint(o.out, policy.model, { tokenizerDir: o.model, dtype: o.dtype.toUpperCase() as "F32" | "BF16" | "F16" });
    log(`merge: LoRA r=${r} alpha=${alpha} on ${targets.join(",")} folded into ${o.model}; wrote ${o.out}`);
    if (o.json) printJson({ out: o.out, r, alpha, targets });
    policy.model.dispose();
    backend.destroy();
  });
}
