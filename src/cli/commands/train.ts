import { Option, type Command } from "commander";
import { DEFAULTS, loadOptionsFile, OPTION_KINDS, parseOptions, type TrainOptions } from "../../rl/options.js";
import { runTraining } from "../../rl/run.js";
import { followTraining } from "../../rl/run-follower.js";
import { joinWorld, launchLocal, resolveDistSpec, DEFAULT_TIMEOUT_S, LaunchError } from "../../distributed/launch.js";
import { intArg, log, numArg, printJson } from "../common.js";

/** One line of --help per option (the full documentation is on TrainOptions). */
const HELP: { [K in keyof TrainOptions]: string } = {
  model: "model directory (HF format); default: make the tiny model and warm it up with SFT",
  task: "task generator",
  dataset: "JSONL dataset ({prompt, answer} per line) instead of generated prompts",
  out: "run directory (metrics.jsonl, checkpoints/, report.html)",
  backend: "compute backend (auto: cuda, then a hardware webgpu adapter, then cpu)",
  threads: "CPU threads (0 = all cores)",
  seed: "seed for data, sampling and init: same seed, same run",
  adapter: "PEFT LoRA adapter directory to start from (implies LoRA; its r, alpha and targets are used)",
  loraR: "LoRA rank (0 = full fine-tuning); base frozen, only the adapter trained and saved",
  loraAlpha: "LoRA alpha: update = (alpha / r) B A (0 = 2r)",
  loraTargets: "projections with adapters: any of q,k,v,o,gate,up,down",
  algo: "preset: sets advantage, loss aggregation and anchor unless given",
  advantage: "advantage estimator",
  anchor: "inject ground-truth trajectories: in every group (the paper), only in all-fail groups, or off",
  anchorCount: "ground-truth trajectories per anchored group",
  anchorAnneal: "decay the anchoring probability from 1 to 0",
  anchorAnnealSteps: "annealing horizon in steps (0 = the whole run)",
  steps: "RL optimizer steps",
  promptsPerStep: "prompts (groups) per step",
  groupSize: "rollouts per prompt (G)",
  maxNewTokens: "longest completion in tokens",
  temperature: "rollout sampling temperature",
  topP: "nucleus sampling mass (1 = off)",
  topK: "top-k sampling (0 = off)",
  minP: "min-p sampling (0 = off)",
  rolloutServer: "comma-separated OpenAI-compatible servers (vLLM, SGLang, anvil serve) to draw rollouts from, e.g. http://10.0.0.2:8000,http://10.0.0.3:8000",
  syncEvery: "publish weights to the rollout servers every N steps",
  syncDir: "directory the servers load published weights from (default: <out>/published)",
  rolloutTimeoutMs: "per-request timeout of a rollout server (a slower one counts as failed)",
  epsLow: "PPO clip: ratio >= 1 - epsLow",
  epsHigh: "PPO clip: ratio <= 1 + epsHigh (clip-higher)",
  dualClip: "dual-clip constant for negative advantages (0 = off)",
  beta: "KL coefficient against the frozen initial policy (0 = off)",
  kl: "KL estimator",
  entropyCoef: "entropy bonus coefficient",
  tisCap: "truncated importance-sampling cap (0 = off)",
  lossAggregation: "how token losses are averaged",
  numIterations: "policy updates per batch (mu)",
  lr: "peak learning rate (0 = by model size: 3e-4 under 10M parameters, 1e-5 under 1B, else 1e-6)",
  warmupSteps: "linear warmup steps",
  minLrRatio: "cosine floor as a fraction of lr",
  weightDecay: "AdamW decoupled weight decay",
  beta1: "AdamW beta1",
  beta2: "AdamW beta2",
  maxGradNorm: "global grad-norm clip (0 = off)",
  microBatch: "sequences per forward/backward pass (activation memory grows with it; same gradient)",
  generationBatch: "rollouts decoded together (KV-cache memory grows with it; same rollouts)",
  gradientCheckpointing: "recompute block activations in backward (default auto: on under LoRA above 100M parameters)",
  rewards: 'reward terms with weights, e.g. "correct" (default), "honesty:1,format:0.1,./my-reward.mjs:0.5"',
  rewardTimeoutMs: "per-call reward timeout (a hanging reward costs that sample)",
  rewardHeapMb: "heap limit of each reward worker in MB (a reward that exhausts it costs that sample)",
  curriculum: "depth curriculum",
  minDepth: "smallest derivation depth",
  maxDepth: "largest derivation depth",
  filter: "drop groups without reward variance (zero-std) or with pass rate 0 or 1 (balanced), refilling",
  maxRefills: "extra generation rounds per step to refill filtered groups",
  truncatePrompts: "cut dataset prompts that do not fit the context (with --max-new-tokens) to their last tokens, instead of failing",
  sftSteps: "SFT warm-start steps before RL (the tiny default uses 400)",
  sftLr: "SFT learning rate",
  sftBatch: "SFT batch size",
  checkpointEvery: "checkpoint every N steps",
  evalEvery: "held-out eval every N steps (0 = start and end only)",
  evalN: "held-out eval size",
  evalDepth: "depth of the held-out items (0 = uniform over min..max depth)",
  reportEvery: "rewrite report.html every N steps",
  samplesPerStep: "rollouts logged to samples.jsonl per step",
  progress: "progress bar on stderr",
};

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

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
  for (const key of Object.keys(OPTION_KINDS) as (keyof TrainOptions)[]) {
    const { kind } = OPTION_KINDS[key];
    const flag = `--${kebab(key)}`;
    const def = DEFAULTS[key];
    if (kind === "boolean" || kind === "auto-boolean") {
      cmd.addOption(new Option(flag, HELP[key]));
      cmd.addOption(new Option(`--no-${kebab(key)}`).hideHelp());
      continue;
    }
    const shown = def === "" ? "" : ` [default: ${key === "lr" && def === 0 ? "auto" : String(def)}]`;
    const opt = new Option(`${flag} <value>`, HELP[key] + shown);
    if (Array.isArray(kind)) opt.choices([...kind]);
    cmd.addOption(opt);
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
