// Truncated importance sampling compares like with like: the rollout log-probs are those of the
// distribution the sampler drew from (tempered, truncated, renormalised), the trainer's are at
// the same temperature, so the weight p/q is exactly the mass the truncation kept.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, SampleOptions } from "../src/backend/backend.js";
import { createBackend } from "../src/backend/index.js";
import { initModel } from "../src/model/init.js";
import { keptLogMass } from "../src/model/sampling-dist.js";
import { packBatch } from "../src/rl/batch.js";
import { Policy } from "../src/rl/policy.js";
import { scoreTokens } from "../src/rl/step.js";
import { taskCorpus } from "../src/tasks/index.js";

const opts = (o: Partial<SampleOptions>): SampleOptions => ({ temperature: 1, topK: 0, topP: 1, minP: 0, ...o });

describe("kept mass of the sampling distribution", () => {
  const z = [0.4, 0.3, 0.2, 0.1].map(Math.log);
  it.each([
    ["no truncation", opts({}), 1],
    ["top-p 0.65 keeps 0.4 + 0.3", opts({ topP: 0.65 }), 0.7],
    ["top-k 3", opts({ topK: 3 }), 0.9],
    ["min-p 0.3 keeps q >= 0.12", opts({ minP: 0.3 }), 0.9],
    ["top-k 3 then top-p 0.5 of the survivors (0.45 of 0.9: 0.4 + 0.3)", opts({ topK: 3, topP: 0.5 }), 0.7],
    ["top-k 3 then top-p 0.4 of the survivors (0.36 of 0.9: 0.4)", opts({ topK: 3, topP: 0.4 }), 0.4],
    // T = 0.5 squares the probabilities: (16, 9, 4, 1) / 30; top-p 0.65 needs 16 + 9.
    ["temperature 0.5, top-p 0.65", opts({ temperature: 0.5, topP: 0.65 }), 25 / 30],
  ])("%s", (_, o, mass) => {
    expect(Math.exp(keptLogMass(z, o))).toBeCloseTo(mass, 12);
  });
  it("keeps ties at the boundary", () => {
    expect(Math.exp(keptLogMass([0, 0, 0, -1e9], opts({ topK: 1 })))).toBeCloseTo(1, 12);
    expect(Math.exp(keptLogMass([0, 0, -1e9, -1e9], opts({ topP: 0.1 })))).toBeCloseTo(1, 12);
  });
});

describe("truncated importance weights in a rollout", () => {
  let be: Backend;
  let policy: Policy;
  beforeAll(async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "anvil-tis-")), "model");
    await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 100), out: dir, seed: 4 });
    be = await createBackend("cpu");
    policy = await Policy.load(dir, be);
  });
  afterAll(() => {
    policy.model.dispose();
    be.destroy();
  });

  /** Rollouts under `sampling`; per completion token: trainer log-prob minus rollout log-prob,
   * and the log kept mass from an independent full forward pass over the sequence. */
  async function logWeights(sampling: SampleOptions) {
    const prompts = ["Premises:\n- rain is true.\nQuestion: Is rain true or false?", "Premises:\n- fog is false.\nQuestion: Is fog true or false?"];
    const gens = await policy.generate(prompts, { maxNewTokens: 12, sampling, seed: 7 });
    const batch = packBatch(
      gens.map((g, i) => ({ promptIds: policy.encodePrompt(prompts[i]), completionIds: g.tokens, rolloutLogprobs: g.logprobs })),
      policy.padId,
    );
    const { logprob } = await scoreTokens(policy.model, batch, sampling.temperature, 16);
    const acts = policy.model.forward(batch.ids, batch.B, batch.T, { noGrad: true });
    const logitsT = policy.model.logits(acts.hidden);
    const logits = (await be.read(logitsT)) as Float32Array;
    logitsT.dispose();
    acts.dispose();
    const V = policy.model.config.vocabSize;
    const got: number[] = [];
    const want: number[] = [];
    for (let t = 0; t < batch.B * batch.T; t++) {
      if (!batch.mask[t]) continue;
      got.push(logprob[t] - batch.rolloutLogprobs[t]);
      want.push(keptLogMass(logits.subarray(t * V, (t + 1) * V), sampling));
    }
    return { got, want };
  }

  it("is 1 for every token when only the temperature differs from 1", async () => {
    const { got } = await logWeights(opts({ temperature: 0.7 }));
    expect(got.length).toBeGreaterThan(10);
    for (const g of got) expect(Math.abs(g)).toBeLessThan(2e-4);
  });

  it("is the kept mass under top-p and top-k, for every token", async () => {
    for (const o of [opts({ temperature: 0.7, topP: 0.8 }), opts({ temperature: 1.3, topK: 20 })]) {
      const { got, want } = await logWeights(o);
      expect(got.length).toBeGreaterThan(10);
      got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThan(2e-4));
      expect(Math.min(...want)).toBeLessThan(Math.log(0.95)); // the truncation does bite
    }
  });
});
