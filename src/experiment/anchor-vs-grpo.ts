// The paper's experiment (arXiv 2511.09222), as one resumable command: from a weak SFT start
// (held-out answerable accuracy in [10%, 40%]), plain GRPO, GRPO with a depth curriculum and
// GRPO + Anchor, over several seeds, on GraphLA and GraphLI. Held-out accuracy (overall,
// answerable, unanswerable, abstain rate) before and after RL at the training depth and two
// deeper; per-step curves; one results JSON and one HTML report. The preference methods (DPO,
// IPO, SimPO, MaPPO on pairs from the weak start, online DPO: preference-methods.ts) start from
// the same weak start with the same prompt and update budget, into the same table.
//
// Layout of `out`:
//   <task>/init/                 the base model (preset, tokenizer fitted to the task)
//   <task>/weak/                 the weak start, shared by every seed and method (+ weak.json:
//                                SFT steps and its eval)
//   <task>/<method>-seed<S>/     an `anvil train` (or `anvil dpo`) run directory (+ depth-eval.json)
//   <task>/pairs-seed<S>/        the offline preference methods' pairs of seed S
//   results.json, report.html
// Every finished piece is reused when the command is run again, so a killed run resumes.
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Backend } from "../backend/backend.js";
import { createBackend } from "../backend/index.js";
import { saveCheckpoint } from "../model/checkpoint.js";
import { initModel, type Preset } from "../model/init.js";
import { evaluate, type EvalResult } from "../rl/eval.js";
import { resolveOptions, type TrainOptions } from "../rl/options.js";
import { Policy } from "../rl/policy.js";
import type { PairsStats } from "../rl/pairs.js";
import { heldOut, latestCheckpoint, runTraining, traceBudget } from "../rl/run.js";
import { runSft, sftStream } from "../rl/sft.js";
import { completionFor, generateDataset, taskTokenizerInput } from "../tasks/index.js";
import type { TaskName } from "../tasks/types.js";
import { writeFileAtomic } from "../util/atomic.js";
import { readJsonFileSync } from "../util/json-file.js";
import { Progress } from "../util/progress.js";
import { writeExperimentReport } from "../report/experiment.js";
import { readMetrics } from "../report/report.js";
import { PREFERENCE_METHODS, trainPreferenceMethod } from "./preference-methods.js";
import { savedWeakStart, weakFingerprint } from "./saved-weak.js";

export const RL_METHODS = ["grpo", "grpo-curriculum", "anchor"] as const;
export type RlMethod = (typeof RL_METHODS)[number];
export const METHODS = [...RL_METHODS, ...PREFERENCE_METHODS] as const;
export type Method = (typeof METHODS)[number];
const isRl = (m: Method): m is RlMethod => (RL_METHODS as readonly string[]).includes(m);

/** What each method changes in the RL options (everything else is shared). */
function methodOptions(m: RlMethod, depth: number, anchorCount: number): Partial<TrainOptions> {
  switch (m) {
    case "grpo":
      return { algo: "grpo", minDepth: depth, maxDepth: depth };
    case "grpo-curriculum":
      return { algo: "grpo", curriculum: "linear", minDepth: 1, maxDepth: depth };
    case "anchor":
      return { algo: "anchor", anchor: "always", anchorCount, minDepth: depth, maxDepth: depth };
  }
}

export interface ExperimentOptions {
  tasks: TaskName[];
  seeds: number[];
  methods: Method[];
  /** Model preset made for each task. */
  preset: Preset;
  /** Training depth; held-out evaluation also at depth + 1 and depth + 2. */
  depth: number;
  /** RL steps per run. */
  steps: number;
  promptsPerStep: number;
  groupSize: number;
  /** Held-out items per depth (half unanswerable). */
  evalN: number;
  /** Held-out eval of the training run every N steps, for the curves. */
  evalEvery: number;
  /** Weak start: SFT, evaluated every sftChunk steps (every sftChunk / 5 once answerable accuracy
   * reaches weakMin), until answerable accuracy passes weakMax or sftMaxSteps; the strongest
   * checkpoint inside the window is taken. */
  sftChunk: number;
  sftMaxSteps: number;
  /** Use this checkpoint as the weak start (e.g. an `anvil experiment sft-ceiling` model, with its
   * own tokenizer) instead of running the SFT; one task only. */
  weakFrom?: string;
  /** Take the package's saved weak start of a task (results/weak-starts/<task>) when it was made
   * for this version's items, traces and tokenizer (saved-weak.ts): what --quick does. */
  savedWeak: boolean;
  /** Held-out items (half unanswerable) the weak start's SFT is checked on, its own set. */
  probeN: number;
  sftLr: number;
  /** Arithmetic sheets added to each of the weak start's SFT steps of 16 items, on GraphLA (tasks/sheet.ts). */
  sftSheets: number;
  /** Answerable-accuracy window of the weak start. */
  weakMin: number;
  weakMax: number;
  /** On a true/false task (GraphLI) the weak start must also be right on this fraction of the
   * answerable items it answers: a model that guesses true/false is right on half, and its low
   * accuracy is not a weak reasoner's. A guessed price (GraphLA) is almost never right, so there
   * the window alone rules out guessers. */
  weakPrecision: number;
  lr: number;
  beta: number;
  /** Rollout sampling temperature of the RL runs (1 = the policy itself); the trainer optimises the
   * same tempered policy it samples, so the update stays on-policy. */
  temperature: number;
  /** Ground-truth trajectories in each of Anchor's groups (the paper: 1), in place of as many rollouts. */
  anchorCount: number;
  /** Rounds of dpo-online at most (the largest divisor of steps not above it). */
  onlineRounds: number;
  out: string;
  backend: TrainOptions["backend"];
  /** CPU threads (0 = all cores). */
  threads: number;
  log: (line: string) => void;
}

export const FULL: Omit<ExperimentOptions, "out" | "log" | "backend" | "threads"> = {
  tasks: ["graphla", "graphli"],
  seeds: [1, 2, 3],
  methods: [...RL_METHODS],
  preset: "tiny",
  depth: 2,
  steps: 40,
  promptsPerStep: 8,
  groupSize: 5,
  evalN: 128,
  evalEvery: 10,
  sftChunk: 250,
  sftMaxSteps: 2000,
  probeN: 128,
  sftLr: 6e-3, // the committed tables' weak starts were made at 6e-3, before PRESET_SFT_LR became 3e-3
  // 4 sheets: more answerable items right, but no larger margin over GRPO (+8.3 against +9.4,
  // results/arith-sheets/), so the default keeps the committed tables' weak-start recipe.
  sftSheets: 0,
  weakMin: 0.1,
  weakMax: 0.4,
  weakPrecision: 0.75,
  lr: 1e-3,
  beta: 0,
  temperature: 1,
  anchorCount: 1,
  onlineRounds: 4,
  savedWeak: false,
};

/** A smoke run of the table: one seed, half the RL steps, smaller evals, the saved weak starts. */
export const QUICK: Partial<ExperimentOptions> = { seeds: [1], steps: 20, evalN: 64, evalEvery: 10, savedWeak: true };

export interface Accuracy {
  acc: number;
  ans: number;
  unans: number;
  abstain: number;
  /** Right answers over answered (not abstained) answerable items; 0 when none was answered. */
  precision?: number;
}
export interface RunRow {
  task: TaskName;
  method: Method;
  seed: number;
  /** Held-out accuracy by depth (key: depth) before RL (the weak start) and after. */
  before: Record<string, Accuracy>;
  after: Record<string, Accuracy>;
  /** The policy's own rollouts (sampled at temperature 1, anchors excluded) over the last
   * ROLLOUT_WINDOW steps (dpo-online: rounds): what greedy evaluation hides when the policy is
   * split between answering and abstaining. null for the offline preference methods, which
   * sample nothing while training. */
  rolloutsEnd: Accuracy | null;
  /** Offline preference methods: the pairs sampled from the weak start. */
  pairs?: PairsStats;
  seconds: number;
}
export interface WeakStart {
  task: TaskName;
  /** SFT steps of the experiment's own weak start (0 when taken from `from`). */
  sftSteps: number;
  /** The checkpoint given with --weak, or the saved weak start, if any. */
  from?: string;
  /** Of the experiment's own weak start: what it was made for (saved-weak.ts). */
  fingerprint?: string;
  eval: Accuracy;
  inWindow: boolean;
}
export interface ExperimentResults {
  options: Omit<ExperimentOptions, "log">;
  /** Rollout budget per task: the longest ground-truth completion at the training depth + 8. */
  maxNewTokens: Record<string, number>;
  weak: WeakStart[];
  runs: RunRow[];
  summary: SummaryRow[];
  /** Anchor's overall accuracy minus each other method's (the target is stated this way). */
  margins: Margin[];
  seconds: number;
}
/** Anchor minus `method` in held-out overall accuracy at one depth, seed by seed (a seed's runs
 * share the weak start and the evaluation items), and their mean. */
export interface Margin {
  task: TaskName;
  method: Method;
  depth: number;
  mean: number;
  bySeed: Record<string, number>;
}
export interface SummaryRow {
  task: TaskName;
  method: Method;
  depth: number;
  n: number;
  before: Accuracy;
  after: Accuracy;
  afterSd: Accuracy;
  rolloutsEnd: Accuracy | null;
}

const pick = (e: EvalResult): Accuracy => ({ acc: e.acc, ans: e.acc_answerable, unans: e.acc_unanswerable, abstain: e.abstain_rate });
const precisionOf = (e: EvalResult): number => (e.abstain_answerable < 1 ? e.acc_answerable / (1 - e.abstain_answerable) : 0);
/** The precision a task's weak start needs (weakPrecision): only a true/false answer can be guessed right. */
export const precisionFloor = (task: TaskName, o: ExperimentOptions): number => (task === "graphli" ? o.weakPrecision : 0);
export const inWindow = (task: TaskName, a: Accuracy, o: ExperimentOptions): boolean =>
  a.ans >= o.weakMin && a.ans <= o.weakMax && (a.precision ?? 0) >= precisionFloor(task, o);
const readJson = <T>(p: string): T | null => (existsSync(p) ? readJsonFileSync<T>(p) : null);

/** Bad options (say --anchor-count not below --group-size) fail before any SFT, with the trainer's own checks. */
export function checkExperiment(o: ExperimentOptions): void {
  if (o.weakFrom && o.tasks.length > 1) throw new Error("--weak takes one task's checkpoint: give one task with --tasks");
  for (const m of o.methods) if (isRl(m)) resolveOptions(rlOptions(m, o));
}

export async function runExperiment(opts: ExperimentOptions): Promise<ExperimentResults> {
  const t0 = performance.now();
  const o = { ...opts, out: resolve(opts.out) };
  const { log } = o;
  checkExperiment(o);
  mkdirSync(o.out, { recursive: true });
  const evalDepths = [o.depth, o.depth + 1, o.depth + 2];
  const weak: WeakStart[] = [];
  const runs: RunRow[] = [];
  const budgets: Record<string, number> = {};

  for (const task of o.tasks) {
    const saved = o.savedWeak && !o.weakFrom && !hasWeakStart(o.out, task) ? savedWeakStart(task, o.preset, o.depth, log) : null;
    const from = o.weakFrom ?? saved ?? undefined;
    if (saved) log(`${task}: the weak start is the saved one, ${saved}`);
    // A finished weak start has the task's tokenizer too: a resumed run needs no base model.
    const base = from ? resolve(from) : hasWeakStart(o.out, task) ? weakDir(o.out, task) : join(o.out, task, "init");
    if (!existsSync(join(base, "config.json"))) await initModel({ preset: o.preset, ...taskTokenizerInput(task), out: base, seed: 1 });
    const backend = await createBackend(o.backend === "auto" ? "cpu" : o.backend, { threads: o.threads });
    const evalSets = new Map(evalDepths.map((d) => [d, heldOut(task, o.evalN, d, d, 0x5eed)]));
    // Rollouts get room for the training depth's longest ground truth; each held-out depth its own.
    let maxNewTokens = 0;
    const evalBudget = new Map<number, number>();
    const evalAt = async (policy: Policy): Promise<Record<string, Accuracy>> => {
      const r: Record<string, Accuracy> = {};
      for (const [d, set] of evalSets) r[d] = pick((await evaluate(policy, set, evalBudget.get(d)!)).result);
      return r;
    };
    try {
      {
        const p = await Policy.load(base, backend);
        maxNewTokens = traceBudget(p.tokenizer, task, o.depth);
        for (const d of evalDepths) evalBudget.set(d, traceBudget(p.tokenizer, task, d));
        p.model.dispose();
      }
      budgets[task] = maxNewTokens;
      const w = await weakStart(task, base, from !== undefined, backend, o, maxNewTokens, evalAt);
      weak.push(w.info);
      for (const seed of o.seeds) {
        for (const method of o.methods) {
          const runDir = join(o.out, task, `${method}-seed${seed}`);
          const cached = readJson<RunRow>(join(runDir, "depth-eval.json"));
          if (cached) {
            runs.push({ ...cached, rolloutsEnd: rolloutsAtEnd(runDir) });
            continue;
          }
          log(`== ${task} ${method} seed ${seed}`);
          const t1 = performance.now();
          let trained: string | null;
          let pairs: PairsStats | null = null;
          if (isRl(method)) trained = await trainRlMethod(method, task, seed, w.dir, runDir, maxNewTokens, o);
          else
            ({ modelDir: trained, pairs } = await trainPreferenceMethod(
              method,
              { ...o, task, seed, weak: w.dir, taskDir: join(o.out, task), maxNewTokens, backend: o.backend === "auto" ? "cpu" : o.backend },
              backend,
            ));
          let after = w.before;
          if (trained) {
            const policy = await Policy.load(trained, backend);
            after = await evalAt(policy);
            policy.model.dispose();
          }
          mkdirSync(runDir, { recursive: true }); // a preference method without pairs made none
          const row: RunRow = { task, method, seed, before: w.before, after, rolloutsEnd: rolloutsAtEnd(runDir), ...(pairs ? { pairs } : {}), seconds: (performance.now() - t1) / 1000 };
          await writeFileAtomic(join(runDir, "depth-eval.json"), JSON.stringify(row, null, 2) + "\n");
          runs.push(row);
          const a = row.after[o.depth]!;
          log(`   after: acc ${pct(a.acc)} (answerable ${pct(a.ans)}, unanswerable ${pct(a.unans)}, abstain ${pct(a.abstain)}) in ${row.seconds.toFixed(0)} s`);
        }
      }
    } finally {
      backend.destroy();
    }
  }

  const { log: _log, ...options } = o;
  const results: ExperimentResults = {
    options,
    maxNewTokens: budgets,
    weak,
    runs,
    summary: summarize(runs),
    margins: margins(runs),
    seconds: (performance.now() - t0) / 1000,
  };
  await writeFileAtomic(join(o.out, "results.json"), JSON.stringify(results, null, 2) + "\n");
  await writeExperimentReport(o.out, results);
  return results;
}

/** One child process's share of the table: a task, a seed, and the methods it trains. */
export interface WorkUnit {
  task: TaskName;
  seed: number;
  methods: Method[];
}

/** Each RL method of each (task, seed) apart; a seed's preference methods together, as they share
 * that seed's pairs. */
export function workUnits(o: Pick<ExperimentOptions, "tasks" | "seeds" | "methods">): WorkUnit[] {
  const rl = o.methods.filter(isRl);
  const pref = o.methods.filter((m) => !isRl(m));
  return o.tasks.flatMap((task) => o.seeds.flatMap((seed) => [...rl.map((m) => ({ task, seed, methods: [m] })), ...(pref.length ? [{ task, seed, methods: pref }] : [])]));
}

/**
 * The units longest first, so that `--jobs` children end close together (a long unit started last
 * keeps one core busy while the other idles). A unit's cost is estimated by the mean length of the
 * ground-truth completions at the depths it trains on: rollouts, which dominate a run, grow with
 * it. Ties keep their order.
 */
export function longestFirst(units: WorkUnit[], depth: number): WorkUnit[] {
  const lengths = new Map<string, number>(); // the same (task, depths) for every seed
  const cost = (u: WorkUnit): number => {
    const m = u.methods[0]!;
    const { minDepth = depth, maxDepth = depth } = u.methods.length === 1 && isRl(m) ? methodOptions(m, depth, 1) : {};
    const key = `${u.task} ${minDepth} ${maxDepth}`;
    if (!lengths.has(key)) {
      const items = generateDataset(u.task, { n: 32, depth: [minDepth, maxDepth], seed: 0 });
      lengths.set(key, items.reduce((chars, i) => chars + completionFor(i).length, 0) / items.length);
    }
    return lengths.get(key)!;
  };
  return units.map((u) => ({ u, c: cost(u) })).sort((a, b) => b.c - a.c).map(({ u }) => u);
}

/** Where a task's weak start is kept, and whether it is finished (its checkpoint and weak.json). */
const weakDir = (out: string, task: TaskName): string => join(out, task, "weak");
export const hasWeakStart = (out: string, task: TaskName): boolean =>
  existsSync(join(weakDir(out, task), "weak.json")) && existsSync(join(weakDir(out, task), "config.json"));

/** An RL method's `anvil train` options shared by every task and seed (checked before any SFT). */
function rlOptions(method: RlMethod, o: ExperimentOptions): Partial<TrainOptions> {
  return {
    steps: o.steps,
    promptsPerStep: o.promptsPerStep,
    groupSize: o.groupSize,
    evalN: o.evalN,
    evalDepth: o.depth,
    evalEvery: o.evalEvery,
    checkpointEvery: Math.max(1, Math.min(10, o.steps)),
    lr: o.lr,
    beta: o.beta,
    temperature: o.temperature,
    backend: o.backend === "auto" ? "cpu" : o.backend,
    threads: o.threads,
    sftSteps: 0,
    progress: false,
    ...methodOptions(method, o.depth, o.anchorCount),
  };
}

/** An `anvil train` run of an RL method from the weak start (resumed when killed); returns its final checkpoint. */
async function trainRlMethod(method: RlMethod, task: TaskName, seed: number, weak: string, runDir: string, maxNewTokens: number, o: ExperimentOptions): Promise<string> {
  const resume = existsSync(join(runDir, "config.json")) && latestCheckpoint(runDir) !== null;
  const train: Partial<TrainOptions> = { model: weak, task, seed, out: runDir, maxNewTokens, ...rlOptions(method, o) };
  await runTraining(resume ? { resume: runDir } : train, { log: o.log });
  return latestCheckpoint(runDir)!.dir;
}

/** The weak start's pick among SFT checks: the strongest inside the window; stop once past it. */
export class WeakChoice {
  best: { steps: number; acc: Accuracy } | null = null;
  constructor(
    private task: TaskName,
    private o: ExperimentOptions,
  ) {}
  /** keep: this check is the best so far (save it); stop: SFT has passed the window. */
  observe(steps: number, acc: Accuracy): { keep: boolean; stop: boolean } {
    const keep = inWindow(this.task, acc, this.o) && (!this.best || acc.ans > this.best.acc.ans);
    if (keep) this.best = { steps, acc };
    return { keep, stop: acc.ans > this.o.weakMax };
  }
}

/**
 * The weak start of a task (shared by every seed and method, as in the paper): SFT on the
 * ground-truth traces, evaluated every sftChunk steps on its own held-out items (every sftChunk / 5
 * once it answers enough), until its answerable accuracy passes weakMax. It takes the strongest
 * checkpoint inside the window (answerable accuracy in [weakMin, weakMax], and on a true/false task
 * right on at least weakPrecision of the answerable items it answers: not a guesser); with none, the
 * first one past the window (or the last, at sftMaxSteps), with a warning.
 */
async function weakStart(
  task: TaskName,
  base: string,
  /** base is a finished weak start (--weak, or the saved one): check it, run no SFT. */
  given: boolean,
  backend: Backend,
  o: ExperimentOptions,
  maxNewTokens: number,
  evalAt: (p: Policy) => Promise<Record<string, Accuracy>>,
) {
  const dir = weakDir(o.out, task);
  const saved = readJson<{ info: WeakStart; before: Record<string, Accuracy> }>(join(dir, "weak.json"));
  if (saved && hasWeakStart(o.out, task)) return { dir, ...saved };
  let policy = await Policy.load(base, backend);
  // Selection uses its own held-out items (not the reported eval sets), half unanswerable.
  const probe = heldOut(task, o.probeN, o.depth, o.depth, 0x3eab);
  const check = async (): Promise<Accuracy> => {
    const e = (await evaluate(policy, probe, maxNewTokens)).result;
    return { ...pick(e), precision: precisionOf(e) };
  };
  // (An untrained model's check runs every item to the token budget: skip it when SFT follows.)
  let acc: Accuracy | null = given || o.sftMaxSteps === 0 ? await check() : null;
  let steps = 0;
  let every = o.sftChunk;
  // The strongest in-window checkpoint so far is saved in `dir` (weak.json, written last, marks it done).
  const choice = new WeakChoice(task, o);
  if (!given) {
    const bar = new Progress(`weak start ${task} sft`, o.sftMaxSteps);
    await runSft(policy, {
      steps: o.sftMaxSteps,
      lr: o.sftLr,
      ...sftStream(task, { seed: 1, minDepth: 1, maxDepth: o.depth, items: 16, sheets: o.sftSheets }),
      onStep: async (s, loss) => {
        bar.update(s + 1, { loss });
        if ((s + 1) % every !== 0) return;
        steps = s + 1;
        acc = await check();
        // Inside the window SFT can cross it fast (GraphLI at lr 6e-3: 29.7% answerable with 52.8%
        // precision at step 750, 59.4% with 88.4% at 1,000), so look more often.
        if (acc.ans >= o.weakMin) every = Math.max(1, Math.floor(o.sftChunk / 5));
        o.log(`weak start ${task}: ${steps} SFT steps, answerable ${pct(acc.ans)} (right on ${pct(acc.precision!)} of those it answers), unanswerable ${pct(acc.unans)}`);
        const { keep, stop } = choice.observe(steps, acc);
        if (keep) await saveCheckpoint(dir, policy.model, { tokenizerDir: base });
        return stop;
      },
    });
    bar.done();
    if (steps < o.sftMaxSteps && !(acc && acc.ans > o.weakMax)) {
      steps = o.sftMaxSteps; // the last steps since the last check
      acc = await check();
      if (choice.observe(steps, acc).keep) await saveCheckpoint(dir, policy.model, { tokenizerDir: base });
    }
  }
  if (choice.best) {
    ({ steps, acc } = choice.best);
    policy.model.dispose();
    policy = await Policy.load(dir, backend);
  }
  acc ??= await check();
  const made = given ? { from: base } : { fingerprint: weakFingerprint(task, o.preset, o.depth) };
  const info: WeakStart = { task, sftSteps: steps, ...made, eval: acc, inWindow: inWindow(task, acc, o) };
  if (!info.inWindow)
    o.log(`warning: the weak start of ${task} has answerable accuracy ${pct(acc.ans)}, right on ${pct(acc.precision!)} of those it answers: outside [${pct(o.weakMin)}, ${pct(o.weakMax)}] with at least ${pct(precisionFloor(task, o))}`);
  const before = await evalAt(policy);
  await saveCheckpoint(dir, policy.model, { tokenizerDir: base });
  policy.model.dispose();
  await writeFileAtomic(join(dir, "weak.json"), JSON.stringify({ info, before }, null, 2) + "\n");
  return { dir, info, before };
}

/** Steps averaged for RunRow.rolloutsEnd. */
export const ROLLOUT_WINDOW = 5;

function rolloutsAtEnd(runDir: string): Accuracy | null {
  if (!existsSync(join(runDir, "metrics.jsonl"))) return null;
  const steps = readMetrics(runDir).filter((m) => m.step > 0 && !m.final && typeof m.acc_answerable === "number").slice(-ROLLOUT_WINDOW);
  if (steps.length === 0) return null;
  const avg = (k: string) => mean(steps.map((m) => m[k]!));
  return { acc: avg("acc"), ans: avg("acc_answerable"), unans: avg("acc_unanswerable"), abstain: avg("abstain_rate") };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const KEYS = ["acc", "ans", "unans", "abstain"] as const;

/** Mean (and sd) over seeds, per task, method and evaluation depth. */
export function summarize(runs: RunRow[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  const key = (r: RunRow) => `${r.task}|${r.method}`;
  for (const k of [...new Set(runs.map(key))]) {
    const rs = runs.filter((r) => key(r) === k);
    for (const depth of Object.keys(rs[0]!.after).map(Number)) {
      const agg = (f: (x: Accuracy) => number, which: "before" | "after", stat = mean) => stat(rs.map((r) => f(r[which][depth]!)));
      const acc = (which: "before" | "after", stat = mean): Accuracy =>
        Object.fromEntries(KEYS.map((q) => [q, agg((x) => x[q], which, stat)])) as unknown as Accuracy;
      const own = rs.map((r) => r.rolloutsEnd).filter((x): x is Accuracy => x !== null);
      const rolloutsEnd = own.length ? (Object.fromEntries(KEYS.map((q) => [q, mean(own.map((x) => x[q]))])) as unknown as Accuracy) : null;
      out.push({ task: rs[0]!.task, method: rs[0]!.method, depth, n: rs.length, before: acc("before"), after: acc("after"), afterSd: acc("after", sd), rolloutsEnd });
    }
  }
  return out;
}

/** Anchor against every other method, over the seeds both ran; none without Anchor. */
export function margins(runs: RunRow[]): Margin[] {
  const out: Margin[] = [];
  for (const anchor of runs.filter((r) => r.method === "anchor")) {
    for (const other of runs.filter((r) => r.task === anchor.task && r.seed === anchor.seed && r.method !== "anchor")) {
      for (const depth of Object.keys(anchor.after).map(Number)) {
        if (!other.after[depth]) continue;
        let m = out.find((x) => x.task === other.task && x.method === other.method && x.depth === depth);
        if (!m) out.push((m = { task: other.task, method: other.method, depth, mean: 0, bySeed: {} }));
        m.bySeed[anchor.seed] = anchor.after[depth]!.acc - other.after[depth]!.acc;
      }
    }
  }
  for (const m of out) m.mean = mean(Object.values(m.bySeed));
  return out;
}

/** One line per margin: "graphli depth 2: anchor - grpo = +20.1 points (seeds 1 / 2 / 3: ...)". */
export function formatMargins(results: Pick<ExperimentResults, "margins">): string {
  const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
  return results.margins
    .map((m) => `${m.task} depth ${m.depth}: anchor - ${m.method} = ${pts(m.mean)} points (seeds ${Object.keys(m.bySeed).join(" / ")}: ${Object.values(m.bySeed).map(pts).join(" / ")})`)
    .join("\n");
}

/** The table as text: one row per task, method and depth. */
export function formatTable(results: ExperimentResults): string {
  const f = (m: number, s?: number) => (s === undefined ? (100 * m).toFixed(1) : `${(100 * m).toFixed(1)} ± ${(100 * s).toFixed(1)}`);
  const lines = [
    "| task | method | depth | before: overall / answerable / unanswerable | after: overall | answerable | unanswerable | abstain | own rollouts, last steps: answerable / abstain |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results.summary) {
    // Rollouts are sampled at the training depth only.
    const roll = r.depth === results.options.depth && r.rolloutsEnd ? `${f(r.rolloutsEnd.ans)} / ${f(r.rolloutsEnd.abstain)}` : "";
    lines.push(
      `| ${r.task} | ${r.method} | ${r.depth} | ${f(r.before.acc)} / ${f(r.before.ans)} / ${f(r.before.unans)} | ${f(r.after.acc, r.afterSd.acc)} | ${f(r.after.ans, r.afterSd.ans)} | ${f(r.after.unans, r.afterSd.unans)} | ${f(r.after.abstain, r.afterSd.abstain)} | ${roll} |`,
    );
  }
  return lines.join("\n");
}
