// `anvil dpo --online` on the tiny model: rounds of pairs sampled from the current policy and
// labelled by the verifier, metrics per round with held-out eval, resume at a round boundary;
// and held-out eval of an offline run given --task.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { metricRows } from "./helpers/metrics.js";
import { initModel } from "../src/model/init.js";
import { runDpo } from "../src/rl/dpo.js";
import { resolvePreferenceOptions } from "../src/rl/preference-options.js";
import { completionFor, generateDataset, taskCorpus } from "../src/tasks/index.js";

const root = resolve(__dirname, "..");
const cli = join(root, "dist", "src", "cli", "main.js");
let work: string;
let model: string;

// A random tiny model answers nothing right, so its prompts give pairs only with the ground
// truth as the chosen side of all-fail prompts (Anchor's idea for DPO).
const ONLINE = {
  backend: "cpu" as const,
  online: true,
  task: "graphli",
  minDepth: 1,
  maxDepth: 1,
  rounds: 2,
  promptsPerRound: 4,
  samples: 2,
  stepsPerRound: 2,
  batch: 2,
  groundTruth: "all-fail" as const,
  maxNewTokens: 24,
  evalN: 4,
  lr: 1e-3,
  warmupSteps: 0,
  progress: false,
  seed: 3,
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-dpo-online-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 200), out: model, seed: 1 });
});

describe("anvil dpo --online", () => {
  it("runs rounds of sampling then training, with pair statistics and held-out eval per round", async () => {
    const out = join(work, "online");
    const lines: string[] = [];
    const r = await runDpo({ ...ONLINE, model, out }, { log: (l) => lines.push(l) });
    expect(r.steps).toBe(4);
    expect(r.initialEval?.n).toBe(4);
    expect(r.finalEval?.n).toBe(4);
    const ms = metricRows(out);
    expect(ms.map((m) => m.step)).toEqual([0, 1, 2, 3, 4]);
    expect(ms[0].eval_acc_answerable).toBeGreaterThanOrEqual(0); // before training
    const ends = ms.filter((m) => m.round !== undefined);
    expect(ends.map((m) => [m.round, m.step])).toEqual([[1, 2], [2, 4]]);
    for (const m of ends) {
      for (const k of ["pairs", "prompts_without_pair", "ground_truth_pairs", "acc", "acc_answerable", "acc_unanswerable", "abstain_rate", "eval_acc", "eval_acc_answerable", "eval_acc_unanswerable", "eval_abstain_rate", "loss", "rewards/accuracies", "rewards/margins", "logps/chosen"])
        expect(Number.isFinite(m[k]), k).toBe(true);
      expect(m.pairs).toBeGreaterThan(0);
    }
    // Each round samples its own prompts.
    const round = (k: number) => readFileSync(join(out, "rounds", `round-${k}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; chosen_is_ground_truth: boolean; prompt: string; chosen: string });
    const [a, b] = [round(1), round(2)];
    expect(a.length).toBe(ends[0]!.pairs);
    expect(a.some((x) => b.some((y) => y.id === x.id))).toBe(false);
    // The ground truth is chosen for prompts with no correct sample (all of them, this early).
    expect(a.every((x) => x.chosen_is_ground_truth && x.chosen.includes("<answer>"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-2", "trainer_state.json"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-4", "optimizer.safetensors"))).toBe(true);
    expect(lines.join("\n")).toMatch(/reference: the starting model/);
    expect(lines.join("\n")).toMatch(/round 2\/2: \d+ pairs from 4 prompts/);
  }, 120_000);

  it("resumes at its last finished round with the same metrics (fixed and refreshed reference)", async () => {
    for (const refreshReference of [false, true]) {
      const full = join(work, `full-${refreshReference}`);
      const cut = join(work, `cut-${refreshReference}`);
      await runDpo({ ...ONLINE, refreshReference, model, out: full }, { log: () => {} });
      await runDpo({ ...ONLINE, refreshReference, model, out: cut }, { log: () => {} });
      rmSync(join(cut, "checkpoints", "step-4"), { recursive: true }); // as if killed in round 2
      const lines: string[] = [];
      const r = await runDpo({ resume: cut }, { log: (l) => lines.push(l) });
      expect(r.steps).toBe(4);
      expect(lines.join("\n")).toMatch(/resuming .* from step 2/);
      expect(lines.join("\n")).not.toMatch(/round 1\/2/);
      expect(metricRows(cut)).toEqual(metricRows(full));
    }
  }, 180_000);

  it("checks its options: a task, no dataset, steps set by the rounds", () => {
    expect(() => resolvePreferenceOptions({ online: true })).toThrow(/--task/);
    expect(() => resolvePreferenceOptions({ online: true, task: "graphli", dataset: "p.jsonl" })).toThrow(/drop --dataset/);
    expect(() => resolvePreferenceOptions({ online: true, task: "graphli", rounds: 3, stepsPerRound: 5, steps: 10 })).toThrow(/= 15/);
    expect(resolvePreferenceOptions({ online: true, task: "graphli", rounds: 3, stepsPerRound: 5 }).steps).toBe(15);
    expect(() => resolvePreferenceOptions({ task: "graphxx" })).toThrow(/not a task/);
    expect(() => resolvePreferenceOptions({ refreshReference: true, dataset: "p.jsonl" })).toThrow(/--online/);
  });

  it("an offline run given --task evaluates before and after", async () => {
    const items = generateDataset("graphli", { n: 6, depth: [1, 1], seed: 9 });
    const file = join(work, "pairs.jsonl");
    writeFileSync(file, items.map((i) => JSON.stringify({ prompt: i.prompt, chosen: completionFor(i), rejected: "<answer>maybe</answer>" })).join("\n") + "\n");
    const out = join(work, "offline");
    const r = await runDpo({ backend: "cpu", model, dataset: file, task: "graphli", minDepth: 1, maxDepth: 1, evalN: 4, maxNewTokens: 24, steps: 2, batch: 2, progress: false, out }, { log: () => {} });
    expect(r.initialEval?.n).toBe(4);
    const ms = metricRows(out);
    expect(ms[0]).toMatchObject({ step: 0, eval_n: 4 });
    expect(ms[ms.length - 1]).toMatchObject({ step: 2, final: 1, eval_n: 4 });
    expect(ms.filter((m) => m.loss !== undefined).map((m) => m.step)).toEqual([1, 2]);
  }, 60_000);

  it("--help documents the online options", () => {
    expect(existsSync(cli), "run `npx tsc -p tsconfig.json` first").toBe(true);
    const p = spawnSync(process.execPath, [cli, "dpo", "--help"], { encoding: "utf8" });
    expect(p.status, p.stderr).toBe(0);
    for (const f of ["--online", "--rounds", "--prompts-per-round", "--steps-per-round", "--samples", "--ground-truth", "--refresh-reference", "--task", "--eval-n"]) expect(p.stdout).toContain(f);
  });
});
