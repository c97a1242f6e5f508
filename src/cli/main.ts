#!/usr/bin/env node
// The `anvil` command: one module per subcommand under commands/.
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { register as bench } from "./commands/bench.js";
import { register as data } from "./commands/data.js";
import { register as doctor } from "./commands/doctor.js";
import { register as dpo } from "./commands/dpo.js";
import { register as evalCmd } from "./commands/eval.js";
import { register as experiment } from "./commands/experiment.js";
import { register as generate } from "./commands/generate.js";
import { register as initModel } from "./commands/init-model.js";
import { register as merge } from "./commands/merge.js";
import { register as pairs } from "./commands/pairs.js";
import { register as probe } from "./commands/probe.js";
import { register as report } from "./commands/report.js";
import { register as score } from "./commands/score.js";
import { register as serve } from "./commands/serve.js";
import { register as sft } from "./commands/sft.js";
import { register as train } from "./commands/train.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command()
  .name("anvil")
  .description("RL from verifiable rewards for language models: GRPO / Anchor on honest deductive reasoning tasks")
  .version(pkg.version)
  .showSuggestionAfterError()
  .addHelpText(
    "after",
    `
Quick start (tiny model made on the spot, SFT warm start, then Anchor GRPO):
  anvil train --out runs/quick
  anvil eval --model runs/quick/checkpoints/step-100 --task graphli --n 200`,
  );
for (const reg of [doctor, initModel, data, sft, train, pairs, dpo, evalCmd, experiment, score, generate, serve, merge, bench, report, probe]) reg(program);

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  process.stderr.write(`anvil: error: ${(e as Error).message}\n`);
  if (process.env.ANVIL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
