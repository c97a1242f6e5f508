import { Option, type Command } from "commander";
import { initModel } from "../../model/init.js";
import { ATTENTION_INITS, type AttentionInit } from "../../model/induction-init.js";
import { taskTokenizerInput } from "../../tasks/index.js";
import type { TaskName } from "../../tasks/types.js";
import { intArg, log, taskOption } from "../common.js";

export function register(program: Command): void {
  program
    .command("init-model")
    .description("write a random Qwen3-style model (HF format) with a byte-level BPE tokenizer fitted to the task")
    .addOption(new Option("--preset <name>", "tiny (~1M params, trains in minutes on 2 cores) or small (~12M)").choices(["tiny", "small"]).default("tiny"))
    .addOption(taskOption())
    .requiredOption("--out <dir>", "output model directory")
    .option("--seed <n>", "initialisation seed", intArg("--seed"), 1)
    .option("--vocab-size <n>", "target tokenizer vocabulary", intArg("--vocab-size", 300))
    .option("--overwrite", "replace an existing model in --out")
    .addOption(
      new Option("--attention-init <kind>", "induction: attention starts as a previous-token head wired to an induction head, so in-context look-up is learnable in minutes; random: HF's N(0, 0.02) everywhere")
        .choices([...ATTENTION_INITS])
        .default("induction"),
    )
    .action(async (o: { preset: "tiny" | "small"; task: TaskName; out: string; seed: number; vocabSize?: number; overwrite?: boolean; attentionInit: AttentionInit }) => {
      const r = await initModel({ preset: o.preset, ...taskTokenizerInput(o.task), out: o.out, seed: o.seed, vocabSize: o.vocabSize, overwrite: o.overwrite, attentionInit: o.attentionInit });
      log(`wrote ${o.out}: ${o.preset} ${r.config.architecture}, ${(r.numParams / 1e6).toFixed(2)}M parameters, vocabulary ${r.config.vocabSize}, ${o.attentionInit} attention init`);
    });
}
