import { Option, type Command } from "commander";
import { parseOptions } from "../../rl/options.js";
import { runDpo } from "../../rl/dpo.js";
import { PREFERENCE_OPTION_NAMES, PREFERENCE_OPTIONS, type PreferenceOptions } from "../../rl/preference-options.js";
import { log, optionFlag, printJson } from "../common.js";

export function register(program: Command): void {
  const cmd = program
    .command("dpo")
    .description(
      "preference optimization on {prompt, chosen, rejected} pairs (--dataset), or online (--online --task T: each round samples pairs from the current policy and labels them with the verifier): " +
        "DPO (sigmoid, cDPO), IPO, SimPO, MaPPO; a run directory like train's, with held-out eval when --task is given",
    )
    .option("--resume <run>", "continue a run directory from its last checkpoint (same metrics as an uninterrupted run)")
    .option("--json", "print the result as one JSON object");
  for (const key of PREFERENCE_OPTION_NAMES) {
    const opt = optionFlag(key, {}, PREFERENCE_OPTIONS);
    cmd.addOption(opt);
    const kind = PREFERENCE_OPTIONS[key].kind;
    if (kind === "boolean" || kind === "auto-boolean") cmd.addOption(new Option(`--no-${opt.long!.slice(2)}`).hideHelp());
  }
  cmd.action(async (flags: Record<string, unknown>) => {
    const { resume, json, ...rest } = flags as { resume?: string; json?: boolean };
    const fromFlags = parseOptions<PreferenceOptions>(rest, "command line", PREFERENCE_OPTIONS);
    const result = await runDpo({ ...fromFlags, ...(resume ? { resume } : {}) }, { log });
    if (json) printJson(result);
  });
}
