// Evidence for Anchor: plain GRPO against GRPO + Anchor from the same weak start (a short
// SFT warm-up of the tiny model), on GraphLA and GraphLI, over several seeds. Prints
// held-out accuracy (overall, answerable, unanswerable) before and after RL.
//
//   node dist/bench/anchor-vs-grpo.js [--tasks graphla,graphli] [--seeds 1,2,3]
//        [--steps 60] [--sft-steps 100] [--eval-n 128] [--out runs/anchor-vs-grpo] [--json]
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createBackend } from "../src/backend/index.js";
import { saveCheckpoint } from "../src/model/checkpoint.js";
import { initModel } from "../src/model/init.js";
import { Policy } from "../src/rl/policy.js";
import { runSft } from "../src/rl/sft.js";
import { runTraining } from "../src/rl/run.js";
import { generate, taskCorpus } from "../src/tasks/index.js";
import type { TaskName } from "../src/tasks/types.js";
import { mixSeed, PURPOSE } from "../src/util/seed.js";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

const tasks = arg("tasks", "graphla,graphli").split(",") as TaskName[];
const seeds = arg("seeds", "1,2,3").split(",").map(Number);
const steps = Number(arg("steps", "60"));
const sftSteps = Number(arg("sft-steps", "100"));
const evalN = Number(arg("eval-n", "128"));
const root = resolve(arg("out", "runs/anchor-vs-grpo"));
const json = process.argv.includes("--json");
const METHODS = ["grpo", "anchor"] as const;
const log = (l: string) => process.stderr.write(l + "\n");

interface Row {
  task: string;
  method: string;
  seed: number;
  before: { acc: number; ans: number; unans: number };
  after: { acc: number; ans: number; unans: number };
  seconds: number;
}

/** The weak start: the tiny model after a short SFT on ground-truth traces. */
async function weakStart(task: TaskName, seed: number): Promise<string> {
  const base = join(root, task, "init");
  if (!existsSync(join(base, "config.json"))) await initModel({ preset: "tiny", corpus: taskCorpus(task), out: base, seed: 1 });
  const dir = join(root, task, `weak-seed${seed}`);
  if (existsSync(join(dir, "config.json"))) return dir;
  const be = await createBackend("cpu");
  const policy = await Policy.load(base, be);
  await runSft(policy, {
    steps: sftSteps,
    lr: 2e-3,
    batch: 16,
    instances: (s, j) => generate(task, { depth: 1 + (mixSeed(seed, s, j, PURPOSE.sft, 1) % 2), seed: mixSeed(seed, s, j, PURPOSE.sft) }),
  });
  await saveCheckpoint(dir, policy.model, { tokenizerDir: base });
  policy.model.dispose();
  be.destroy();
  return dir;
}

const rows: Row[] = [];
mkdirSync(root, { recursive: true });
for (const task of tasks) {
  for (const seed of seeds) {
    const start = await weakStart(task, seed);
    for (const method of METHODS) {
      const out = join(root, task, `${method}-seed${seed}`);
      const t0 = performance.now();
      log(`== ${task} ${method} seed ${seed}`);
      const r = existsSync(join(out, "config.json"))
        ? await runTraining({ resume: out }, { log })
        : await runTraining({ model: start, task, algo: method, steps, seed, out, evalN, backend: "cpu", progress: false, sftSteps: 0, checkpointEvery: steps }, { log });
      const pick = (e: { acc: number; acc_answerable: number; acc_unanswerable: number } | null) => (e ? { acc: e.acc, ans: e.acc_answerable, unans: e.acc_unanswerable } : { acc: NaN, ans: NaN, unans: NaN });
      rows.push({ task, method, seed, before: pick(r.initialEval), after: pick(r.finalEval), seconds: (performance.now() - t0) / 1000 });
    }
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const pct = (xs: number[]) => `${(100 * mean(xs)).toFixed(1)} ± ${(100 * sd(xs)).toFixed(1)}`;
if (json) process.stdout.write(JSON.stringify({ steps, sftSteps, evalN, seeds, rows }) + "\n");
else {
  const lines = [
    `held-out accuracy (%) after ${steps} RL steps from a ${sftSteps}-step SFT start; mean ± sd over seeds ${seeds.join(",")}; n=${evalN} per eval`,
    `${"task".padEnd(8)} ${"method".padEnd(7)} ${"before".padEnd(12)} ${"overall".padEnd(12)} ${"answerable".padEnd(12)} ${"unanswerable".padEnd(12)}`,
  ];
  for (const task of tasks)
    for (const method of METHODS) {
      const rs = rows.filter((r) => r.task === task && r.method === method);
      lines.push(`${task.padEnd(8)} ${method.padEnd(7)} ${pct(rs.map((r) => r.before.acc)).padEnd(12)} ${pct(rs.map((r) => r.after.acc)).padEnd(12)} ${pct(rs.map((r) => r.after.ans)).padEnd(12)} ${pct(rs.map((r) => r.after.unans)).padEnd(12)}`);
    }
  process.stdout.write(lines.join("\n") + "\n");
}
