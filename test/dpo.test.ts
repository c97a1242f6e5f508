// Preference optimization: the losses against PyTorch autograd (test/fixtures/make_dpo.py),
// the preference JSONL format, and `anvil dpo` end to end on the tiny model.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { metricRows } from "./helpers/metrics.js";
import { createBackend } from "../src/backend/index.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { initModel } from "../src/model/init.js";
import { Tokenizer } from "../src/model/tokenizer.js";
import { runDpo } from "../src/rl/dpo.js";
import { encodePairs, packPairs, parsePreferencePairs, type PreferencePair } from "../src/rl/preference-data.js";
import { pairLoss, type PreferenceLoss, type PreferenceLossConfig } from "../src/rl/preference-loss.js";
import { computeReferenceLogps, type ReferenceLogps } from "../src/rl/preference-ref.js";
import { pairSchedule } from "../src/rl/preference-train.js";
import { scoreSequences, sequenceLossGradient } from "../src/rl/step.js";
import { generateDataset, taskCorpus } from "../src/tasks/index.js";
import { DatasetError } from "../src/tasks/dataset.js";

interface Case {
  name: string;
  loss: PreferenceLoss;
  beta: number;
  labelSmoothing: number;
  simpoGamma: number;
  losses: number[];
  dChosen: number[];
  dRejected: number[];
  rewardChosen: number[];
  rewardRejected: number[];
}
const fixture = JSON.parse(readFileSync(join(__dirname, "fixtures", "dpo.json"), "utf8")) as {
  pairs: Record<"chosen" | "rejected" | "refChosen" | "refRejected" | "chosenTokens" | "rejectedTokens" | "scoreChosen" | "scoreRejected", number[]>;
  cases: Case[];
};

describe("preference losses (PyTorch oracle)", () => {
  const p = fixture.pairs;
  for (const c of fixture.cases) {
    it(c.name, () => {
      let worst = 0;
      const err = (got: number, want: number) => (worst = Math.max(worst, Math.abs(got - want) / Math.max(1, Math.abs(want))));
      p.chosen.forEach((_, i) => {
        const l = pairLoss(
          {
            chosen: p.chosen[i],
            rejected: p.rejected[i],
            refChosen: p.refChosen[i],
            refRejected: p.refRejected[i],
            chosenTokens: p.chosenTokens[i],
            rejectedTokens: p.rejectedTokens[i],
            rewardGap: p.scoreChosen[i] - p.scoreRejected[i],
          },
          c,
        );
        err(l.loss, c.losses[i]);
        err(l.dChosen, c.dChosen[i]);
        err(l.dRejected, c.dRejected[i]);
        err(l.rewardChosen, c.rewardChosen[i]);
        err(l.rewardRejected, c.rewardRejected[i]);
      });
      expect(worst, `${c.name}: max relative error`).toBeLessThan(1e-12);
    });
  }

  it("MaPPO with no prior (Δr = 1) is its base loss: DPO, SimPO, IPO", () => {
    const pair = { chosen: -7, rejected: -9, refChosen: -8, refRejected: -8.5, chosenTokens: 5, rejectedTokens: 6, rewardGap: 1 };
    const cfg = { beta: 0.3, labelSmoothing: 0, simpoGamma: 0.5 };
    expect(pairLoss(pair, { ...cfg, loss: "mappo" })).toEqual(pairLoss(pair, { ...cfg, loss: "sigmoid" }));
    expect(pairLoss(pair, { ...cfg, loss: "mappo-simpo" })).toEqual(pairLoss(pair, { ...cfg, loss: "simpo" }));
    expect(pairLoss(pair, { ...cfg, loss: "mappo-ipo" })).toEqual(pairLoss(pair, { ...cfg, loss: "ipo" }));
  });
});

describe("preference pairs (JSONL)", () => {
  it("reads strings and chat-message lists, with optional scores", () => {
    const text = [
      JSON.stringify({ prompt: "Is rain true?", chosen: "yes", rejected: "no" }),
      "",
      JSON.stringify({ prompt: [{ role: "user", content: "hi" }], chosen: [{ role: "assistant", content: "a" }], rejected: [{ role: "assistant", content: "b" }], score_chosen: 0.9, score_rejected: 0.2 }),
    ].join("\n");
    const d = parsePreferencePairs(text, "p.jsonl");
    expect(d.lines).toEqual([1, 3]);
    expect(d.pairs[1].score_chosen).toBe(0.9);
  });

  it("names the file and line of every bad row", () => {
    const good = JSON.stringify({ prompt: "p", chosen: "a", rejected: "b" });
    const text = [good, good, JSON.stringify({ prompt: "p", chosen: "a" }), "{not json", JSON.stringify({ prompt: "p", chosen: "a", rejected: "b", score_chosen: 0.1, score_rejected: 0.5 })].join("\n");
    let err: unknown;
    try {
      parsePreferencePairs(text, "prefs.jsonl");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    const m = (err as Error).message;
    expect(m).toMatch(/prefs\.jsonl/);
    expect(m).toMatch(/line 3: missing field "rejected"/);
    expect(m).toMatch(/line 4: invalid JSON/);
    expect(m).toMatch(/line 5: score_chosen \(0\.1\) is below score_rejected/);
  });
});

// ---- end to end on the tiny model ------------------------------------------------------------

const root = resolve(__dirname, "..");
const cli = join(root, "dist", "src", "cli", "main.js");
let work: string;
let model: string;
let pairsFile: string;
let pairs: PreferencePair[];

/** Pairs from task prompts: the right answer is chosen, a wrong one rejected. */
function makePairs(n: number): PreferencePair[] {
  return generateDataset("graphla", { n, depth: [1, 1], seed: 5 }).map((inst, i) => ({
    prompt: inst.prompt,
    chosen: `<answer>${inst.answer}</answer>`,
    rejected: `<answer>${inst.answer === "unknown" ? "7" : "unknown"}</answer>`,
    score_chosen: 1,
    score_rejected: i % 2 ? 0 : 0.5,
  }));
}

const SMALL = { backend: "cpu" as const, steps: 6, batch: 4, lr: 1e-3, warmupSteps: 0, progress: false, seed: 2 };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-dpo-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: model, seed: 1 });
  pairs = makePairs(8);
  pairsFile = join(work, "pairs.jsonl");
  writeFileSync(pairsFile, pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
});

describe("anvil dpo", () => {
  it("trains: the loss falls and the reward accuracy rises; writes the run directory", async () => {
    const out = join(work, "run-a");
    const r = await runDpo({ ...SMALL, model, dataset: pairsFile, out, steps: 10, checkpointEvery: 5 }, { log: () => {} });
    const ms = metricRows(out);
    expect(ms.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const m of ms)
      for (const k of ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "lr", "grad_norm"]) expect(Number.isFinite(m[k]), k).toBe(true);
    // step 1: the policy is the reference, so every implicit reward is 0 (up to f32 rounding:
    // the reference was scored in differently padded batches)
    expect(ms[0].loss).toBeCloseTo(Math.log(2), 6);
    expect(ms[0]["rewards/margins"]).toBeCloseTo(0, 5);
    const late = ms.slice(-3);
    expect(Math.max(...late.map((m) => m.loss))).toBeLessThan(ms[0].loss - 0.05);
    expect(Math.min(...late.map((m) => m["rewards/accuracies"]))).toBeGreaterThan(0.7);
    expect(r.last?.step).toBe(10);
    expect(existsSync(join(out, "ref_logps.json"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-5", "optimizer.safetensors"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-10", "model.safetensors"))).toBe(true);
    expect(readFileSync(join(out, "report.html"), "utf8")).toContain("rewards/accuracies");
    await expect(runDpo({ ...SMALL, model, dataset: pairsFile, out }, { log: () => {} })).rejects.toThrow(/--resume/);
  });

  it("resumes from its last checkpoint with the same metrics, reusing the cached reference", async () => {
    const full = join(work, "full");
    await runDpo({ ...SMALL, loss: "mappo", model, dataset: pairsFile, out: full, checkpointEvery: 3 }, { log: () => {} });
    const cut = join(work, "cut");
    await runDpo({ ...SMALL, loss: "mappo", model, dataset: pairsFile, out: cut, checkpointEvery: 3 }, { log: () => {} });
    rmSync(join(cut, "checkpoints", "step-6"), { recursive: true }); // as if killed after step 5
    const lines: string[] = [];
    const r = await runDpo({ resume: cut }, { log: (l) => lines.push(l) });
    expect(r.steps).toBe(6);
    expect(lines.join("\n")).toMatch(/resuming .* from step 3/);
    expect(lines.join("\n")).toMatch(/reference log-probs of 8 pairs from/);
    expect(metricRows(cut)).toEqual(metricRows(full));
  });

  it("fails on a bad JSONL line with the file and line number, before creating the run", async () => {
    const bad = join(work, "bad.jsonl");
    writeFileSync(bad, [JSON.stringify(pairs[0]), JSON.stringify(pairs[1]), JSON.stringify({ prompt: "p", chosen: "a" })].join("\n") + "\n");
    const out = join(work, "run-bad");
    await expect(runDpo({ ...SMALL, model, dataset: bad, out }, { log: () => {} })).rejects.toThrow(/bad\.jsonl[\s\S]*line 3: missing field "rejected"/);
    expect(existsSync(out)).toBe(false);
  });

  it("trains a LoRA adapter on pairs given in memory (reference: the base, adapter disabled) with SimPO", async () => {
    const out = join(work, "lora");
    const r = await runDpo({ ...SMALL, steps: 2, loss: "simpo", loraR: 4, model, pairs, out }, { log: () => {} });
    expect(r.last?.step).toBe(2);
    expect(existsSync(join(out, "pairs.jsonl"))).toBe(true);
    expect(existsSync(join(out, "ref_logps.json"))).toBe(false); // SimPO is reference-free
    expect(existsSync(join(out, "checkpoints", "step-2", "adapter_model.safetensors"))).toBe(true);
  });

  it("--json prints one JSON object on stdout and nothing else", () => {
    expect(existsSync(cli), "run `npx tsc -p tsconfig.json` first").toBe(true);
    const out = join(work, "cli");
    const args = ["dpo", "--model", model, "--dataset", pairsFile, "--out", out, "--steps", "2", "--batch", "2", "--backend", "cpu", "--loss", "ipo", "--no-progress", "--json"];
    const p = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
    expect(p.status, p.stderr).toBe(0);
    const lines = p.stdout.trim().split("\n");
    expect(lines.length).toBe(1);
    const res = JSON.parse(lines[0]) as { steps: number; last: Record<string, number> };
    expect(res.steps).toBe(2);
    expect(res.last["rewards/accuracies"]).toBeGreaterThanOrEqual(0);
    expect(p.stderr).toMatch(/step 2\/2 loss/);
  });
});

describe("pair schedule", () => {
  it("visits every pair once per epoch, the same whatever step it starts from", () => {
    const all = pairSchedule(7, 3, 4);
    const seen = [0, 1, 2, 3, 4, 5, 6].flatMap((s) => all(s)); // 21 slots = 3 epochs of 7
    for (let e = 0; e < 3; e++) expect([...seen.slice(7 * e, 7 * e + 7)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(pairSchedule(7, 3, 4)(5)).toEqual(seen.slice(15, 18));
  });
});

describe("pairs in tokens", () => {
  it("a conversational pair encodes like the same pair as strings (the chat template, then the completion and its end token)", async () => {
    const tok = await Tokenizer.load(model);
    expect(tok.hasChatTemplate).toBe(true);
    const p = pairs[0] as { prompt: string; chosen: string; rejected: string };
    const chat: PreferencePair = { prompt: [{ role: "user", content: p.prompt }], chosen: [{ role: "assistant", content: p.chosen }], rejected: [{ role: "assistant", content: p.rejected }] };
    const [a, b] = encodePairs(tok, 4096, parsePreferencePairs([JSON.stringify({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected }), JSON.stringify(chat)].join("\n")));
    expect(b).toEqual(a);
    expect(a.rewardGap).toBe(1);
  });

  it("a pair longer than the model's context is an error naming its line", async () => {
    const tok = await Tokenizer.load(model);
    expect(() => encodePairs(tok, 20, parsePreferencePairs(["", JSON.stringify(pairs[1])].join("\n"), "long.jsonl"))).toThrow(/long\.jsonl[\s\S]*line 2: prompt \+ completion is \d+ tokens, over the model's context of 20/);
  });
});

describe("gradient through the model (finite differences)", () => {
  const cases: PreferenceLossConfig[] = [
    { loss: "sigmoid", beta: 1, labelSmoothing: 0.1, simpoGamma: 0 },
    { loss: "ipo", beta: 0.5, labelSmoothing: 0, simpoGamma: 0 },
    { loss: "mappo-simpo", beta: 2, labelSmoothing: 0, simpoGamma: 0.5 },
  ];
  for (const cfg of cases)
    it(`${cfg.loss}: d loss / d parameter matches the end-to-end loss`, async () => {
      const be = await createBackend("cpu");
      const { model: m } = await loadCheckpoint(model, be);
      try {
        const tok = await Tokenizer.load(model);
        const data = parsePreferencePairs(pairs.slice(0, 3).map((p) => JSON.stringify(p)).join("\n"));
        const tp = encodePairs(tok, m.config.maxPositionEmbeddings, data);
        const padId = tok.padTokenId ?? 0;
        const batch = packPairs(tp, padId);
        const k = tp.length;
        // a reference away from the policy, so the log-ratios are not all zero
        const ref0 = await computeReferenceLogps(m, tp, padId, 16, false);
        const ref: ReferenceLogps = { chosen: ref0.chosen.map((x, i) => x + 0.7 * (i + 1)), rejected: ref0.rejected.map((x, i) => x - 0.4 * i) };
        const lossOf = (sums: ArrayLike<number>) => {
          let total = 0;
          const d = new Float64Array(2 * k);
          tp.forEach((p, i) => {
            const l = pairLoss({ chosen: sums[i], rejected: sums[k + i], refChosen: ref.chosen[i], refRejected: ref.rejected[i], chosenTokens: p.chosen.completionIds.length, rejectedTokens: p.rejected.completionIds.length, rewardGap: p.rewardGap }, cfg);
            total += l.loss / k;
            d[i] = l.dChosen / k;
            d[k + i] = l.dRejected / k;
          });
          return { total, d };
        };
        m.zeroGrads();
        // pair i is rows i and k + i: given together, in blocks; the other pairs' terms are not read
        const groupOf = Int32Array.from({ length: 2 * k }, (_, b) => b % k);
        await sequenceLossGradient(m, batch, groupOf, (rows, sums) => {
          const all = new Float64Array(2 * k);
          rows.forEach((r, j) => (all[r] = sums[j]));
          const { d } = lossOf(all);
          return Array.from(rows, (r) => d[r]);
        });
        const evalLoss = async () => lossOf(await scoreSequences(m, batch, 16)).total;
        let checked = 0;
        for (const name of ["model.layers.0.mlp.down_proj.weight", "model.norm.weight"]) {
          const param = m.params.get(name)!;
          const grad = (await be.read(m.grads.get(name)!)) as Float32Array;
          const w = (await be.read(param)) as Float32Array;
          // the entry with the largest gradient: the best-conditioned finite difference
          let j = 0;
          for (let i = 0; i < grad.length; i++) if (Math.abs(grad[i]) > Math.abs(grad[j])) j = i;
          const eps = 1e-2;
          const at = async (x: number) => {
            be.write(param, new Float32Array([x]), j);
            return evalLoss();
          };
          const fd = ((await at(w[j] + eps)) - (await at(w[j] - eps))) / (2 * eps);
          be.write(param, new Float32Array([w[j]]), j);
          expect(Math.abs(fd - grad[j]) / Math.abs(grad[j]), `${name}[${j}]: fd ${fd} vs grad ${grad[j]}`).toBeLessThan(0.03);
          checked++;
        }
        expect(checked).toBe(2);
      } finally {
        m.dispose();
        be.destroy();
      }
    });
});
