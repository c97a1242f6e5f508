import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { createInterface } from "node:readline";
import { Option, type Command } from "commander";
import { runPipelined, type TableJob } from "../../experiment/schedule.js";
import { runCeiling } from "../../experiment/sft-ceiling.js";
import { checkExperiment, FULL, formatMargins, formatTable, hasWeakStart, longestFirst, METHODS, QUICK, runExperiment, workUnits, type ExperimentOptions, type Method, type WorkUnit } from "../../experiment/anchor-vs-grpo.js";
import { TASK_NAMES, type TaskName } from "../../tasks/types.js";
import { backendFlags, intArg, log, numArg, printJson } from "../common.js";

const list = <T extends string>(name: string, allowed: readonly string[]) => (v: string): T[] => {
  const xs = v.split(",").map((x) => x.trim()).filter(Boolean);
  for (const x of xs) if (!allowed.includes(x)) throw new Error(`${name}: "${x}" is not one of ${allowed.join(", ")}`);
  if (xs.length === 0) throw new Error(`${name}: give at least one of ${allowed.join(", ")}`);
  return xs as T[];
};
const seedList = (v: string): number[] => {
  const xs = v.split(",").map(Number);
  if (xs.length === 0 || xs.some((x) => !Number.isSafeInteger(x) || x < 0)) throw new Error(`--seeds: expected non-negative integers separated by commas, got "${v}"`);
  return xs;
};

export function register(program: Command): void {
  backendFlags(
    program
      .command("experiment")
      .description(
        "reproduce the paper's comparison (arXiv 2511.09222): from a weak SFT start, GRPO, GRPO with a depth curriculum and Anchor, " +
          "over seeds, on GraphLA and GraphLI, and with --methods the preference methods (DPO, IPO, SimPO, MaPPO on pairs from the weak start, online DPO) from the same start and budget; " +
          "writes results.json and report.html (resumable: run it again to continue)",
      )
      .argument("<name>", "anchor-vs-grpo (the paper's comparison) or sft-ceiling (how far SFT alone takes the preset, depths 1-4)")
      .option("--quick", `one seed, ${QUICK.steps} RL steps, ${QUICK.evalN} eval items per depth, from the saved weak starts (about 10 minutes on 2 cores)`)
      .option("--tasks <list>", "tasks, comma-separated", list<TaskName>("--tasks", TASK_NAMES), FULL.tasks)
      .option("--seeds <list>", "seeds, comma-separated", seedList)
      .option("--methods <list>", `methods, comma-separated (${METHODS.join(", ")})`, list<Method>("--methods", METHODS), FULL.methods)
      .addOption(new Option("--preset <name>", "model preset made for each task").choices(["tiny", "small"]).default(FULL.preset))
      .option("--depth <n>", "training depth (held-out eval also at depth+1 and depth+2)", intArg("--depth", 1), FULL.depth)
      .option("--steps <n>", "RL steps per run", intArg("--steps", 1))
      .option("--prompts-per-step <n>", "groups per RL step", intArg("--prompts-per-step", 1), FULL.promptsPerStep)
      .option("--group-size <n>", "rollouts per prompt (the paper uses 5)", intArg("--group-size", 2), FULL.groupSize)
      .option("--eval-n <n>", "held-out items per depth (half unanswerable)", intArg("--eval-n", 2))
      .option("--eval-every <n>", "held-out eval every N RL steps, for the curves", intArg("--eval-every", 1))
      .option("--lr <x>", "RL learning rate (0 = by model size)", numArg("--lr", 0), FULL.lr)
      .option("--beta <x>", "KL coefficient (the paper: about 0.001; 0 keeps no reference model)", numArg("--beta", 0), FULL.beta)
      .option("--temperature <x>", "RL rollout sampling temperature (1 = the policy itself; the trainer optimises the same tempered policy)", numArg("--temperature", 0), FULL.temperature)
      .option("--anchor-count <n>", "anchor: ground-truth trajectories per group, in place of as many rollouts (the paper: 1)", intArg("--anchor-count", 1), FULL.anchorCount)
      .option("--online-rounds <n>", "dpo-online: rounds at most (the largest divisor of --steps not above it)", intArg("--online-rounds", 1), FULL.onlineRounds)
      .option("--sft-lr <x>", "peak SFT learning rate (weak start; sft-ceiling)", numArg("--sft-lr", 0), FULL.sftLr)
      .option("--sft-sheets <n>", "GraphLA: arithmetic sheets (16 of its traces' computations each) added to every SFT step of 16 items (weak start; sft-ceiling)", intArg("--sft-sheets", 0), FULL.sftSheets)
      .option("--sft-link-sheets <n>", "GraphLA: link sheets (an item's premises, each two-dish premise to be found from its pair of dishes) added to every SFT step (sft-ceiling)", intArg("--sft-link-sheets", 0), 0)
      .option("--sft-depth-weights <w>", "sft-ceiling: SFT items' depths 1-4 drawn in these proportions (e.g. 1,1,2,4; uniform by default)")
      .option("--sft-max-steps <n>", "cap on the weak start's SFT steps", intArg("--sft-max-steps", 1), FULL.sftMaxSteps)
      .option("--weak <dir>", "take this checkpoint as the weak start instead of running SFT (e.g. runs/sft-ceiling/graphli/model; one task)")
      .option("--saved-weak", "take the package's saved weak starts (results/weak-starts) when made for this version's items and tokenizer (--quick's default)")
      .option("--no-saved-weak", "make the weak starts by SFT even with --quick")
      .option("--out <dir>", "output directory (default: runs/<name>)")
      .option("--jobs <n>", "runs side by side in child processes, one CPU thread each, a task's runs once its weak start is done (default: the cores)", intArg("--jobs", 1))
      .addOption(new Option("--weak-only", "make the weak starts and stop (what --jobs runs first)").hideHelp())
      .addOption(new Option("--part", "a child of --jobs: print no table").hideHelp())
      .option("--json", "print results.json's content as one JSON object"),
  ).action(async (name: string, f: Record<string, unknown> & { quick?: boolean; json?: boolean; out: string; backend: ExperimentOptions["backend"]; threads: number }) => {
    if (name === "sft-ceiling") return ceiling(f);
    if (name !== "anchor-vs-grpo") throw new Error(`unknown experiment "${name}"; use anchor-vs-grpo or sft-ceiling`);
    if ((f.sftLinkSheets as number) > 0) throw new Error("--sft-link-sheets is for sft-ceiling only (the weak starts keep their committed recipe)");
    f.out ??= "runs/anchor-vs-grpo";
    // Flags the user gave (or commander defaulted) win over the --quick preset, which wins over FULL.
    const given = Object.fromEntries(Object.entries(f).filter(([k, v]) => v !== undefined && k in FULL));
    const weakFrom = f.weak as string | undefined;
    const opts: ExperimentOptions = { ...FULL, ...(f.quick ? QUICK : {}), ...given, ...(weakFrom ? { weakFrom } : {}), out: f.out, backend: f.backend, threads: f.threads, log };
    checkExperiment(opts);
    if (f.weakOnly) opts.methods = [];
    const units = workUnits(opts);
    const jobs = Math.min(units.length, (f.jobs as number | undefined) ?? availableParallelism());
    if (jobs > 1 && !f.weakOnly) await runJobs(opts, units, jobs);
    const res = await runExperiment(opts);
    if (f.weakOnly || f.part) return;
    log(formatTable(res));
    if (res.margins.length) log(formatMargins(res));
    log(`results: ${opts.out}/results.json, report: ${opts.out}/report.html (${res.seconds.toFixed(0)} s)`);
    if (f.json) printJson(res);
  });
}

/**
 * The table over `jobs` child processes of this command: each task's weak start (one child per task
 * still without one), then every unit, longest first, each as soon as its task's weak start is done
 * (runPipelined), on single-threaded children (two OpenMP teams on two cores fight). Each child
 * caches what it finishes, so a failed child costs only its unit: running the command again
 * resumes. This process then gathers the cached runs into results.json and report.html.
 */
async function runJobs(o: ExperimentOptions, units: WorkUnit[], jobs: number): Promise<void> {
  // This command's own flags, less those each child gets its own value of.
  const own = ["--tasks", "--seeds", "--methods", "--jobs", "--threads"];
  const base: string[] = [];
  for (let i = 0, args = process.argv.slice(2); i < args.length; i++) {
    if (args[i] === "--json" || own.some((flag) => args[i]!.startsWith(`${flag}=`))) continue;
    if (own.includes(args[i]!)) i++; // and its value
    else base.push(args[i]!);
  }
  const child = (label: string, args: string[]) =>
    new Promise<void>((resolveChild, reject) => {
      const c = spawn(process.execPath, [process.argv[1]!, ...base, ...args, "--jobs", "1", "--part"], { stdio: ["ignore", "ignore", "pipe"] });
      createInterface({ input: c.stderr! }).on("line", (l) => log(`[${label}] ${l}`));
      c.on("exit", (code) => (code === 0 ? resolveChild() : reject(new Error(`the job ${label} exited with code ${code}; run the command again to resume`))));
    });
  log(`anvil: ${units.length} runs on ${jobs} child processes, each task's runs once its weak start is done`);
  const needWeak = o.tasks.filter((t) => !hasWeakStart(o.out, t));
  // The cores split between the weak starts only when nothing else can run beside them.
  const weakThreads = needWeak.length === o.tasks.length ? Math.max(1, Math.floor(jobs / needWeak.length)) : 1;
  const queue: TableJob<WorkUnit>[] = [...needWeak.map((task) => ({ kind: "weak" as const, task })), ...longestFirst(units, o.depth).map((unit) => ({ kind: "unit" as const, unit }))];
  await runPipelined(queue, jobs, (j) =>
    j.kind === "weak"
      ? child(`${j.task} weak start`, ["--tasks", j.task, "--weak-only", "--threads", String(weakThreads)])
      : child(`${j.unit.task} ${j.unit.methods.join(",")} seed ${j.unit.seed}`, ["--tasks", j.unit.task, "--seeds", String(j.unit.seed), "--methods", j.unit.methods.join(","), "--threads", "1"]),
  );
}

/** `anvil experiment sft-ceiling`: SFT the preset on depths 1-4 and print held-out accuracy per depth. */
async function ceiling(f: Record<string, unknown> & { json?: boolean; out?: string; threads: number }): Promise<void> {
  const res = await runCeiling({
    tasks: (f.tasks as TaskName[] | undefined) ?? FULL.tasks,
    preset: (f.preset as "tiny" | "small" | undefined) ?? FULL.preset,
    steps: (f.steps as number | undefined) ?? 3000,
    batch: 16,
    sheets: f.sftSheets as number,
    links: f.sftLinkSheets as number,
    depthWeights: f.sftDepthWeights ? String(f.sftDepthWeights).split(",").map(Number) : undefined,
    lr: f.sftLr as number,
    minDepth: 1,
    maxDepth: 4,
    evalEvery: (f.evalEvery as number | undefined) ?? 250,
    evalN: (f.evalN as number | undefined) ?? 128,
    threads: f.threads,
    out: f.out ?? "runs/sft-ceiling",
    log,
  });
  for (const r of res) {
    const last = r.curve[r.curve.length - 1]!;
    log(`${r.task} (${r.preset}, ${(r.numParams / 1e6).toFixed(2)}M parameters) after ${last.step} SFT steps: ` + Object.entries(last.acc).map(([d, a]) => `depth ${d} ${(100 * a.acc).toFixed(1)}%`).join(", "));
  }
  if (f.json) printJson(res);
}
