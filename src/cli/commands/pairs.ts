import { InvalidArgumentError, Option, type Command } from "commander";
import { createBackend } from "../../backend/index.js";
import type { BackendChoice } from "../../backend/backend.js";
import { GROUND_TRUTH_CHOICES, makePairs, PAIR_SCORES, type PairsOptions } from "../../rl/pairs.js";
import { Policy } from "../../rl/policy.js";
import { createScorer } from "../../rl/scoring.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { Progress } from "../../util/progress.js";
import { adapterOption, backendFlags, intArg, log, optionFlag, printJson, taskOption } from "../common.js";

/** The command's flags: makePairs' options plus the model, the reward pool and the output. */
interface PairsFlags extends PairsOptions {
  model: string;
  adapter?: string;
  rewards: string;
  rewardTimeoutMs: number;
  rewardHeapMb: number;
  out: string;
  json?: boolean;
  backend: BackendChoice;
  threads: number;
}

export function register(program: Command): void {
  backendFlags(
    program
      .command("pairs")
      .description("preference pairs from a task: sample completions, label them with the verifier, write {prompt, chosen, rejected} JSONL for `anvil dpo`")
      .requiredOption("--model <dir>", "model directory that samples the completions")
      .addOption(adapterOption())
      .addOption(taskOption())
      .requiredOption("--n <prompts>", "prompts (half unanswerable)", intArg("--n", 1))
      .requiredOption("--out <file.jsonl>", "output JSONL (written atomically)")
      .addOption(optionFlag("minDepth", { withDefault: true }))
      .addOption(optionFlag("maxDepth", { withDefault: true }))
      .addOption(optionFlag("seed", { help: "seed of the prompts and the sampling (a stream disjoint from held-out evaluation)", withDefault: true }))
      .option("--samples <k>", "completions sampled per prompt", intArg("--samples", 2), 4)
      .option("--pairs-per-prompt <k>", "pairs kept per prompt at most (largest reward gap first)", intArg("--pairs-per-prompt", 1), 1)
      .addOption(
        new Option("--ground-truth <when>", "when the task's ground-truth trajectory is the chosen completion: never, all-fail (a prompt with no correct sample), always")
          .choices([...GROUND_TRUTH_CHOICES])
          .default("never"),
      )
      .addOption(
        new Option("--scores <what>", "score_chosen/score_rejected (MaPPO's prior): reward (the ranking reward), honesty (correct 1, abstained 0.5, wrong 0)")
          .choices([...PAIR_SCORES])
          .default("reward"),
      )
      .addOption(optionFlag("temperature", { withDefault: true }))
      .addOption(optionFlag("topP", { withDefault: true }))
      .addOption(optionFlag("maxNewTokens", { withDefault: true }))
      .addOption(optionFlag("rewards", { help: "reward that ranks the completions (its value is written as score_chosen/score_rejected)", withDefault: true }))
      .addOption(optionFlag("rewardTimeoutMs", { withDefault: true }))
      .addOption(optionFlag("rewardHeapMb", { withDefault: true }))
      .option("--json", "print one JSON object (the statistics) on stdout"),
  ).action(async (o: PairsFlags) => {
    if (o.minDepth > o.maxDepth) throw new InvalidArgumentError(`--min-depth ${o.minDepth} is above --max-depth ${o.maxDepth}`);
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    const scorer = await createScorer(o.rewards, { timeoutMs: o.rewardTimeoutMs, heapMb: o.rewardHeapMb });
    const bar = new Progress("pairs", o.n);
    const t0 = performance.now();
    try {
      const { rows, stats } = await makePairs(policy, scorer, o, (done) => bar.update(done));
      bar.done();
      await writeFileAtomic(o.out, rows.map((r) => JSON.stringify(r) + "\n").join(""));
      const seconds = (performance.now() - t0) / 1000;
      if (o.json) printJson({ out: o.out, task: o.task, ...stats, seconds });
      else {
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        process.stdout.write(
          `wrote ${stats.pairs} pairs from ${stats.prompts} prompts to ${o.out} (${seconds.toFixed(1)} s)\n` +
            `samples correct: answerable ${pct(stats.acc_answerable)}, unanswerable ${pct(stats.acc_unanswerable)}; abstain rate ${pct(stats.abstain_rate)}\n` +
            `prompts without a pair ${stats.prompts_without_pair}; pairs with the ground truth chosen ${stats.ground_truth_pairs}\n`,
        );
      }
    } finally {
      await scorer.close();
      policy.model.dispose();
      backend.destroy();
    }
  });
}
