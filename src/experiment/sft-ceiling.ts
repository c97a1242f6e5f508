// How far SFT alone takes a preset: supervised training on ground-truth traces over depths
// minDepth..maxDepth, with held-out accuracy (overall, answerable, unanswerable) at every depth
// after each evaluation interval. The ceiling the RL experiments can hope to reach.
//
// Writes out/<task>/results.json (the curve) and out/<task>/model (the last checkpoint). At every
// evaluation the checkpoint (with the optimizer state) and out/<task>/curve.json are written, so
// a killed run continues from its last evaluation when the command is run again (the batches
// are a function of the step, so it trains on what it would have); a finished task (its
// results.json) is reused as it is.
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createBackend } from "../backend/index.js";
import { loadOptimizerState, saveCheckpoint } from "../model/checkpoint.js";
import { initModel, type Preset } from "../model/init.js";
import { evaluate } from "../rl/eval.js";
import { Policy } from "../rl/policy.js";
import { heldOut } from "../rl/run.js";
import { runSft, sftStream } from "../rl/sft.js";
import { completionFor, taskTokenizerInput } from "../tasks/index.js";
import { readJsonFileSync } from "../util/json-file.js";
import type { TaskName } from "../tasks/types.js";
import { writeFileAtomic } from "../util/atomic.js";
import { Progress } from "../util/progress.js";

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export interface CeilingOptions {
  tasks: TaskName[];
  preset: Preset;
  steps: number;
  /** Ground-truth items per SFT step. */
  batch: number;
  /** Arithmetic sheets added to each step, on GraphLA (tasks/sheet.ts). */
  sheets: number;
  /** Link sheets added to each step, on GraphLA (tasks/sheet.ts). */
  links?: number;
  /** SFT depth weights, one per depth from minDepth (uniform without). */
  depthWeights?: number[];
  lr: number;
  minDepth: number;
  maxDepth: number;
  evalEvery: number;
  evalN: number;
  threads: number;
  out: string;
  log: (line: string) => void;
}

export interface CeilingPoint {
  step: number;
  loss: number;
  seconds: number;
  /** depth -> accuracy */
  acc: Record<string, { acc: number; ans: number; unans: number }>;
}

export interface CeilingResult {
  task: TaskName;
  preset: Preset;
  numParams: number;
  curve: CeilingPoint[];
}

export async function runCeiling(o: CeilingOptions): Promise<CeilingResult[]> {
  const results: CeilingResult[] = [];
  for (const task of o.tasks) {
    const dir = join(resolve(o.out), task);
    const cached = join(dir, "results.json");
    const finished = existsSync(cached) ? readJsonFileSync<CeilingResult>(cached) : null;
    const reached = finished?.curve.at(-1)?.step ?? 0;
    if (finished && reached >= o.steps) {
      results.push(finished);
      continue;
    }
    // Asked for more steps than it ran: continue from its last evaluation, below.
    if (finished) o.log(`${task}: finished at step ${reached}; continuing to ${o.steps} (the learning rate's cosine now spans ${o.steps} steps, so it rises again from its floor)`);
    mkdirSync(dir, { recursive: true });
    const init = join(dir, "init");
    if (!existsSync(join(init, "config.json"))) await initModel({ preset: o.preset, ...taskTokenizerInput(task), out: init, seed: 1 });
    const backend = await createBackend("cpu", { threads: o.threads });
    // A killed run's last evaluation: its checkpoint, optimizer state and curve.
    const saved = join(dir, "model");
    const optimizer = existsSync(join(dir, "curve.json")) ? await loadOptimizerState(saved) : null;
    const resumed = optimizer ? readJsonFileSync<CeilingResult>(join(dir, "curve.json")) : null;
    const last = resumed?.curve.at(-1);
    const from = optimizer && last && last.step === optimizer.step ? { step: last.step, optimizer } : undefined;
    if (from && from.step >= o.steps) {
      // Killed between its last evaluation and results.json.
      await writeFileAtomic(cached, JSON.stringify(resumed, null, 2) + "\n");
      results.push(resumed!);
      backend.destroy();
      continue;
    }
    if (finished && !from) {
      backend.destroy();
      throw new Error(`${task}: ${dir} holds a finished run but no checkpoint at its last evaluation to continue from (${saved}); give --steps it reached or another --out`);
    }
    if (from) o.log(`${task}: continuing from step ${from.step} (${saved})`);
    const policy = await Policy.load(from ? saved : init, backend);
    const model = policy.model;
    const depths = Array.from({ length: o.maxDepth - o.minDepth + 1 }, (_, i) => o.minDepth + i);
    const sets = depths.map((d) => [d, heldOut(task, o.evalN, d, d, 0xce11)] as const);
    const budget = Math.max(...sets.flatMap(([, s]) => s.map((i) => policy.encodeCompletion(completionFor(i)).length))) + 8;
    const res: CeilingResult = from ? resumed! : { task, preset: o.preset, numParams: model.numParameters, curve: [] };
    const t0 = performance.now() - (from ? last!.seconds * 1000 : 0);
    const bar = new Progress(`${task} sft`, o.steps, undefined, from?.step ?? 0);
    try {
      await runSft(policy, {
        steps: o.steps,
        lr: o.lr,
        ...sftStream(task, { seed: 1, minDepth: o.minDepth, maxDepth: o.maxDepth, items: o.batch, sheets: o.sheets, links: o.links, depthWeights: o.depthWeights }),
        from,
        onStep: async (s, loss, _lr, optimizerState) => {
          bar.update(s + 1, { loss });
          if ((s + 1) % o.evalEvery !== 0 && s + 1 !== o.steps) return;
          const point: CeilingPoint = { step: s + 1, loss, seconds: (performance.now() - t0) / 1000, acc: {} };
          for (const [d, set] of sets) {
            const e = (await evaluate(policy, [...set], budget)).result;
            point.acc[d] = { acc: e.acc, ans: e.acc_answerable, unans: e.acc_unanswerable };
          }
          res.curve.push(point);
          await saveCheckpoint(saved, model, { tokenizerDir: init, optimizer: await optimizerState() });
          await writeFileAtomic(join(dir, "curve.json"), JSON.stringify(res, null, 2) + "\n");
          o.log(`${task} step ${s + 1} loss ${loss.toFixed(3)} ${point.seconds.toFixed(0)} s | ` + depths.map((d) => `depth ${d}: ${pct(point.acc[d]!.acc)} (answerable ${pct(point.acc[d]!.ans)}, unanswerable ${pct(point.acc[d]!.unans)})`).join(" | "));
        },
      });
      bar.done();
    } finally {
      model.dispose();
      backend.destroy();
    }
    await writeFileAtomic(cached, JSON.stringify(res, null, 2) + "\n");
    results.push(res);
  }
  return results;
}
