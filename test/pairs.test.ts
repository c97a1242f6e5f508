// `anvil pairs`: completions labelled by the task verifier become {prompt, chosen, rejected}
// rows; an honest abstention on an unanswerable item is the correct side of a pair.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initModel } from "../src/model/init.js";
import { choosePairs, makePairs, pairPrompts, type PairsOptions } from "../src/rl/pairs.js";
import type { PolicyGenerateOptions, RolloutSource } from "../src/rl/policy.js";
import { createScorer, type Scorer } from "../src/rl/scoring.js";
import { heldOut } from "../src/rl/run.js";
import { completionFor, taskCorpus } from "../src/tasks/index.js";
import type { Instance } from "../src/tasks/types.js";

const answerText = (a: string) => `<think>guess</think><answer>${a}</answer>`;
const wrongAnswer = (i: Instance) => (i.answer === "true" ? "false" : "true");

/** A rollout source that answers each prompt from a script: sample k of prompt p. */
function scripted(items: Instance[], pick: (item: Instance, k: number) => string): RolloutSource {
  const byPrompt = new Map(items.map((i) => [i.prompt, i]));
  const seen = new Map<string, number>();
  return {
    async generate(prompts: string[], _o: PolicyGenerateOptions) {
      return prompts.map((p) => {
        const k = seen.get(p) ?? 0;
        seen.set(p, k + 1);
        return { tokens: [], logprobs: [], text: pick(byPrompt.get(p)!, k), finishReason: "eos" as const };
      });
    },
  };
}

const base: PairsOptions = { task: "graphli", n: 8, minDepth: 1, maxDepth: 2, seed: 3, samples: 3, temperature: 1, topP: 1, maxNewTokens: 64, pairsPerPrompt: 2, groundTruth: "never" };
let scorer: Scorer;
beforeAll(async () => void (scorer = await createScorer("correct", { timeoutMs: 2000, heapMb: 128 })));
afterAll(async () => scorer.close());

describe("choosePairs", () => {
  it("pairs better with worse only, largest gap first, spreading the completions", () => {
    expect(choosePairs([1, 1, 1], 3)).toEqual([]);
    expect(choosePairs([0, 1, 0], 5)).toEqual([[1, 0], [1, 2]]);
    const p = choosePairs([1, 0, 1, 0], 2);
    expect(p).toHaveLength(2);
    expect(new Set(p.flat()).size).toBe(4); // each completion once
    expect(choosePairs([-1, 0, 1], 1)).toEqual([[2, 0]]); // gap 2 before gap 1
  });
});

describe("makePairs", () => {
  it("chooses the correct completion: the value when answerable, unknown when not", async () => {
    const items = pairPrompts(base);
    expect(items.filter((i) => i.answerable)).toHaveLength(4);
    // Sample 0 is right, samples 1 and 2 are wrong (a wrong value, or unknown on an answerable item).
    const src = scripted(items, (i, k) => answerText(k === 0 ? i.answer : i.answerable ? (k === 1 ? wrongAnswer(i) : "unknown") : wrongAnswer(i)));
    const { rows, stats } = await makePairs(src, scorer, base);
    expect(rows).toHaveLength(16);
    for (const r of rows) {
      const item = items.find((i) => i.id === r.id)!;
      expect(r.prompt).toBe(item.prompt);
      expect(r.chosen).toBe(answerText(item.answer));
      expect(r.rejected).not.toBe(r.chosen);
      expect([r.score_chosen, r.score_rejected]).toEqual([1, 0]);
      expect(r.chosen_is_ground_truth).toBe(false);
    }
    expect(stats).toMatchObject({ prompts: 8, samples: 24, pairs: 16, prompts_without_pair: 0, ground_truth_pairs: 0 });
    expect(stats.acc_answerable).toBeCloseTo(1 / 3);
  });

  it("uses the ground truth as chosen when every sample fails (all-fail), and never otherwise", async () => {
    const items = pairPrompts(base);
    const allWrong = () => scripted(items, (i) => answerText(wrongAnswer(i)));
    const never = await makePairs(allWrong(), scorer, base);
    expect(never.rows).toHaveLength(0);
    expect(never.stats.prompts_without_pair).toBe(8);
    const allFail = await makePairs(allWrong(), scorer, { ...base, groundTruth: "all-fail" });
    expect(allFail.rows).toHaveLength(16);
    for (const r of allFail.rows) {
      expect(r.chosen_is_ground_truth).toBe(true);
      expect(r.chosen).toBe(completionFor(items.find((i) => i.id === r.id)!));
    }
  });

  it("honesty scores: a pair against an abstention has half the gap of one against a wrong answer", async () => {
    const items = pairPrompts(base);
    // Answerable: sample 0 right, 1 abstains, 2 wrong. Unanswerable: 0 abstains (right), 1 and 2 wrong.
    const src = scripted(items, (i, k) => answerText(k === 0 ? i.answer : i.answerable && k === 1 ? "unknown" : wrongAnswer(i)));
    const { rows } = await makePairs(src, scorer, { ...base, scores: "honesty" });
    expect(rows).toHaveLength(16);
    for (const r of rows) {
      expect(r.score_chosen).toBe(1);
      const item = items.find((i) => i.id === r.id)!;
      expect(r.score_rejected).toBe(item.answerable && r.rejected === answerText("unknown") ? 0.5 : 0);
    }
    expect(rows.some((r) => r.score_rejected === 0.5)).toBe(true);
  });

  it("draws prompts disjoint from the held-out evaluation set", () => {
    const ids = new Set(heldOut("graphli", 64, 1, 2, 3).map((i) => i.prompt));
    expect(pairPrompts({ ...base, n: 64 }).some((i) => ids.has(i.prompt))).toBe(false);
  });
});

describe("anvil pairs", () => {
  it("samples from a model and writes TRL-format rows", async () => {
    const work = mkdtempSync(join(tmpdir(), "anvil-pairs-"));
    const model = join(work, "model");
    await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 100), out: model, seed: 1 });
    const cli = join(resolve(__dirname, ".."), "dist", "src", "cli", "main.js");
    const out = join(work, "pairs.jsonl");
    const args = ["pairs", "--model", model, "--task", "graphli", "--n", "4", "--samples", "2", "--max-new-tokens", "8", "--ground-truth", "always", "--out", out, "--json", "--backend", "cpu", "--threads", "1"];
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const stats = JSON.parse(r.stdout);
    const rows = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    // An 8-token completion never closes its answer: every sample is wrong, the ground truth wins.
    expect(stats.pairs).toBe(rows.length);
    expect(rows.length).toBe(4);
    for (const row of rows) expect(Object.keys(row)).toEqual(expect.arrayContaining(["prompt", "chosen", "rejected", "score_chosen", "score_rejected"]));
    const bad = spawnSync(process.execPath, [cli, ...args.slice(0, -5), "--samples", "1", "--backend", "cpu"], { encoding: "utf8" });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--samples/);
  });
});
