import type { Command } from "commander";
import { createBackend } from "../../backend/index.js";
import { evaluate } from "../../rl/eval.js";
import { Policy } from "../../rl/policy.js";
import { heldOut } from "../../rl/run.js";
import { readDataset } from "../../tasks/dataset.js";
import type { TaskName } from "../../tasks/types.js";
import type { BackendChoice } from "../../backend/backend.js";
import { adapterOption, backendFlags, log, optionFlag, printJson, taskOption } from "../common.js";

export function register(program: Command): void {
  backendFlags(
    program
      .command("eval")
      .description("greedy held-out evaluation: accuracy overall, on answerable and on unanswerable items, abstain rate")
      .requiredOption("--model <dir>", "model directory")
      .addOption(adapterOption())
      .addOption(taskOption())
      .addOption(optionFlag("evalN", { flag: "--n", help: "instances (half unanswerable)", withDefault: true }))
      .addOption(optionFlag("minDepth", { withDefault: true }))
      .addOption(optionFlag("maxDepth", { withDefault: true }))
      .addOption(optionFlag("seed", { help: "seed of the held-out set (train runs use the same derivation)", withDefault: true }))
      .addOption(optionFlag("dataset", { help: "evaluate on a JSONL dataset instead" }))
      .addOption(optionFlag("maxNewTokens", { withDefault: true }))
      .option("--samples", "include every completion in the JSON output")
      .option("--json", "print one JSON object"),
  ).action(async (o: { model: string; adapter?: string; task: TaskName; n: number; minDepth: number; maxDepth: number; seed: number; dataset?: string; maxNewTokens: number; samples?: boolean; json?: boolean; backend: BackendChoice; threads: number }) => {
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    const items = o.dataset ? await readDataset(o.dataset) : heldOut(o.task, o.n, o.minDepth, o.maxDepth, o.seed);
    const t0 = performance.now();
    const { result, samples } = await evaluate(policy, items, o.maxNewTokens);
    const seconds = (performance.now() - t0) / 1000;
    if (o.json) printJson({ model: o.model, task: o.dataset ?? o.task, ...result, seconds, ...(o.samples ? { samples } : {}) });
    else {
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      process.stdout.write(
        `${o.dataset ?? o.task}: n=${result.n}  accuracy ${pct(result.acc)}  answerable ${pct(result.acc_answerable)}  unanswerable ${pct(result.acc_unanswerable)}\n` +
          `abstain rate ${pct(result.abstain_rate)} (on answerable items ${pct(result.abstain_answerable)})  format ${pct(result.format_rate)}  mean length ${result.completion_len_mean.toFixed(1)} tokens  (${seconds.toFixed(1)} s)\n`,
      );
    }
    policy.model.dispose();
    backend.destroy();
  });
}
