import { Option, type Command } from "commander";
import { loadOptionsFile, OPTION_NAMES, OPTIONS, parseOptions } from "../../rl/options.js";
import { runTraining } from "../../rl/run.js";
import { log, optionFlag, printJson } from "../common.js";

export function register(program: Command): void {
  const cmd = program
    .command("train")
    .description("GRPO-family RL (default: Anchor) on a task; with no --model, makes the tiny default model, warms it up with SFT, then trains")
    .option("--config <file>", "JSON or YAML file of options (flags override it)")
    .option("--resume <run>", "continue a run directory from its last checkpoint (same metrics as an uninterrupted run)")
    .option("--json", "print the final result as one JSON object");
  for (const key of OPTION_NAMES) {
    const opt = optionFlag(key);
    cmd.addOption(opt);
    if (OPTIONS[key].kind === "boolean") cmd.addOption(new Option(`--no-${opt.long!.slice(2)}`).hideHelp());
  }
  cmd.action(async (flags: Record<string, unknown>) => {
    const { config, resume, json, ...rest } = flags as { config?: string; resume?: string; json?: boolean };
    const fromFile = config ? loadOptionsFile(config) : {};
    const fromFlags = parseOptions(rest, "command line");
    const result = await runTraining({ ...fromFile, ...fromFlags, ...(resume ? { resume } : {}) }, { log });
    if (json) printJson(result);
  });
}
