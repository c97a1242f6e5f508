import { Option, type Command } from "commander";
import { loadOptionsFile, OPTION_NAMES, OPTIONS, parseOptions } from "../../rl/options.js";
import { runTraining } from "../../rl/run.js";
import { followTraining } from "../../rl/run-follower.js";
import { joinWorld, launchLocal, resolveDistSpec, DEFAULT_TIMEOUT_S, LaunchError } from "../../distributed/launch.js";
import { intArg, log, numArg, optionFlag, printJson } from "../common.js";

export function register(program: Command): void {
  const cmd = program
    .command("train")
    .description("GRPO-family RL (default: Anchor) on a task; with no --model, makes the tiny default model, warms it up with SFT, then trains")
    .option("--config <file>", "JSON or YAML file of options (flags override it)")
    .option("--resume <run>", "continue a run directory from its last checkpoint (same metrics as an uninterrupted run)")
    .option("--json", "print the final result as one JSON object")
    .option("--nproc <n>", "data parallel: run N ranks of this command on this machine (each step's groups split across them)", intArg("--nproc", 1))
    .option("--rank <r>", "data parallel, multi-node: this process's rank (or RANK)", intArg("--rank", 0))
    .option("--world-size <n>", "data parallel, multi-node: number of ranks (or WORLD_SIZE)", intArg("--world-size", 1))
    .option("--master-addr <host:port>", "data parallel, multi-node: rank 0's rendezvous address (or MASTER_ADDR, MASTER_PORT)")
    .option("--dist-timeout <s>", `data parallel: longest wait for a rank within a collective, seconds [default: ${DEFAULT_TIMEOUT_S}]`, numArg("--dist-timeout", 0.001));
  for (const key of OPTION_NAMES) {
    const opt = optionFlag(key);
    cmd.addOption(opt);
    if (OPTIONS[key].kind === "boolean" || OPTIONS[key].kind === "auto-boolean") cmd.addOption(new Option(`--no-${opt.long!.slice(2)}`).hideHelp());
  }
  cmd.action(async (flags: Record<string, unknown>) => {
    const { config, resume, json, nproc, rank, worldSize, masterAddr, distTimeout, ...rest } = flags as {
      config?: string;
      resume?: string;
      json?: boolean;
      nproc?: number;
      rank?: number;
      worldSize?: number;
      masterAddr?: string;
      distTimeout?: number;
    };
    const fromFile = config ? loadOptionsFile(config) : {};
    const fromFlags = parseOptions(rest, "command line");
    const spec = resolveDistSpec({ rank, worldSize, masterAddr, distTimeout });
    if (nproc !== undefined && nproc > 1) {
      if (spec) throw new LaunchError("--nproc launches its own ranks: drop --rank/--world-size (and RANK/WORLD_SIZE), or --nproc for a multi-node launch");
      process.exitCode = await launchLocal(nproc, log);
      return;
    }
    const dp = await joinWorld(spec);
    try {
      if (dp.rank === 0) {
        const result = await runTraining({ ...fromFile, ...fromFlags, ...(resume ? { resume } : {}) }, { log }, dp);
        if (json) printJson(result);
      } else await followTraining(dp, { log: (l) => log(`[rank ${dp.rank}] ${l}`) });
    } catch (e) {
      if (dp.worldSize > 1) (e as Error).message = `rank ${dp.rank}: ${(e as Error).message}`;
      throw e;
    } finally {
      dp.close();
    }
  });
}
