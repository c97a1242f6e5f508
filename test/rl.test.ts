import { describe, expect, it } from "vitest";
import { computeAdvantages } from "../src/rl/advantages.js";
import { anchorProbability, anchorsForGroup } from "../src/rl/anchor.js";
import { gatherTokens, microBatches, packBatch, scatterTokens } from "../src/rl/batch.js";
import { Curriculum } from "../src/rl/curriculum.js";
import { keepGroup } from "../src/rl/filter.js";
import { loadOptionsFile, loraConfigOf, OptionsError, parseOptions, resolveOptions } from "../src/rl/options.js";
import { mixSeed, uniform } from "../src/util/seed.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("advantages", () => {
  const r = [1, 0, 0, 1, /* group 2 */ 1, 1, 1, 1];
  it("grpo: (r - mean) / (sample std + 1e-4), zero for zero-variance groups", () => {
    const a = computeAdvantages(r, 4, "grpo");
    const std = Math.sqrt((4 * 0.25) / 3);
    expect(a[0]).toBeCloseTo(0.5 / (std + 1e-4), 10);
    expect(a[1]).toBeCloseTo(-0.5 / (std + 1e-4), 10);
    expect(a.slice(4)).toEqual([0, 0, 0, 0]);
  });
  it("dr-grpo: r - mean, no std", () => {
    expect(computeAdvantages([2, 0, 1], 3, "dr-grpo")).toEqual([1, -1, 0]);
  });
  it("rloo: r - mean of the others", () => {
    const a = computeAdvantages([3, 0, 0], 3, "rloo");
    expect(a).toEqual([3, -1.5, -1.5]);
  });
  it("reinforce++: group-centred then batch-normalised", () => {
    const a = computeAdvantages([1, 0, 2, 0], 2, "reinforce++");
    const mean = a.reduce((x, y) => x + y) / 4;
    const sd = Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / 3);
    expect(mean).toBeCloseTo(0, 12);
    expect(sd).toBeCloseTo(1, 6);
    expect(Math.sign(a[0])).toBe(1);
    expect(a[2]).toBeGreaterThan(a[0]);
  });
  it("rejects rewards that do not fill whole groups", () => {
    expect(() => computeAdvantages([1, 2, 3], 2, "grpo")).toThrow(RangeError);
  });
});

describe("anchor", () => {
  const base = { mode: "all-fail" as const, count: 1, anneal: "none" as const, annealSteps: 10 };
  it("all-fail anchors only groups where every rollout failed", () => {
    expect(anchorsForGroup(base, [false, false, false, false], 0, 0.5)).toBe(1);
    expect(anchorsForGroup(base, [false, true, false, false], 0, 0.5)).toBe(0);
  });
  it("always anchors every group, never all G rollouts", () => {
    expect(anchorsForGroup({ ...base, mode: "always" }, [true, true], 0, 0.1)).toBe(1);
    expect(anchorsForGroup({ ...base, mode: "always", count: 5 }, [true, true, true], 0, 0.1)).toBe(2);
  });
  it("off never anchors", () => {
    expect(anchorsForGroup({ ...base, mode: "off" }, [false, false], 0, 0)).toBe(0);
  });
  it("annealing decays the probability from 1 to 0", () => {
    const lin = { ...base, anneal: "linear" as const };
    expect(anchorProbability(lin, 0)).toBe(1);
    expect(anchorProbability(lin, 5)).toBeCloseTo(0.5);
    expect(anchorProbability(lin, 10)).toBe(0);
    const cos = { ...base, anneal: "cosine" as const };
    expect(anchorProbability(cos, 5)).toBeCloseTo(0.5);
    expect(anchorsForGroup(lin, [false, false], 5, 0.6)).toBe(0);
    expect(anchorsForGroup(lin, [false, false], 5, 0.4)).toBe(1);
  });
});

describe("batch packing", () => {
  it("targets are the next completion token, -1 elsewhere", () => {
    const p = packBatch(
      [
        { promptIds: [1, 2, 3], completionIds: [4, 5], rolloutLogprobs: [-0.5, -0.25] },
        { promptIds: [7], completionIds: [8, 9, 10] },
      ],
      0,
    );
    expect(p.T).toBe(5);
    expect([...p.ids]).toEqual([1, 2, 3, 4, 5, 7, 8, 9, 10, 0]);
    expect([...p.targets]).toEqual([-1, -1, 4, 5, -1, 8, 9, 10, -1, -1]);
    expect([...p.mask]).toEqual([0, 0, 1, 1, 0, 1, 1, 1, 0, 0]);
    expect([...p.rolloutLogprobs.subarray(0, 5)]).toEqual([0, 0, -0.5, -0.25, 0]);
    expect(p.tokens).toBe(5);
  });

  it("micro-batches group rows by length, cut each to its longest scored row, and map tokens back", () => {
    // Scored lengths (last scored position + 1): 3+5-1 = 7, 1+2-1 = 2, 2+5-1 = 6, 1 + 8 - 1 = 8, none.
    const p = packBatch(
      [
        { promptIds: [1, 2, 3], completionIds: [4, 5, 6, 7, 8] },
        { promptIds: [1], completionIds: [2, 3] },
        { promptIds: [1, 2], completionIds: [3, 4, 5, 6, 7] },
        { promptIds: [9], completionIds: [1, 2, 3, 4, 5, 6, 7, 8] },
        { promptIds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], completionIds: [] },
      ],
      0,
    );
    expect(p.T).toBe(10);
    const mbs = microBatches(p, 4);
    // Longest first: 8, 7, 6 fill 21 of 24 cells (12.5% padding); the 2 would leave 23 of 32 (28%).
    expect(mbs.map((m) => m.rows)).toEqual([[3, 0, 2], [1]]);
    expect(mbs.map((m) => m.batch.T)).toEqual([8, 2]);
    expect(mbs.map((m) => m.batch.tokens)).toEqual([18, 2]);
    expect(mbs.reduce((a, m) => a + m.batch.tokens, 0)).toBe(p.tokens);
    expect([...mbs[0]!.batch.targets.subarray(8, 16)]).toEqual([-1, -1, 4, 5, 6, 7, 8, -1]);
    expect([...mbs[1]!.batch.ids]).toEqual([1, 2]);
    expect(microBatches(p, 2).map((m) => m.rows)).toEqual([[3, 0], [2], [1]]);
    // Per-token values go out to a micro-batch's layout and back to the same cells.
    const values = Float32Array.from({ length: p.B * p.T }, (_, i) => (p.mask[i] ? i : 0));
    const back = new Float32Array(p.B * p.T);
    for (const m of mbs) scatterTokens(back, p.T, m, gatherTokens(values, p.T, m));
    expect([...back]).toEqual([...values]);
  });
});

describe("curriculum and filters", () => {
  it("linear grows the depth ceiling, adaptive follows accuracy", () => {
    const lin = new Curriculum("linear", 1, 5, 11);
    expect(lin.ceiling(0)).toBe(1);
    expect(lin.ceiling(10)).toBe(5);
    const ad = new Curriculum("adaptive", 1, 3, 10);
    ad.update(0.9);
    expect(ad.ceiling(0)).toBe(2);
    ad.update(0.1);
    expect(ad.ceiling(0)).toBe(1);
    for (let i = 0; i < 50; i++) {
      const d = lin.depth(1, 5, i);
      expect(d).toBeGreaterThanOrEqual(1);
      expect(d).toBeLessThanOrEqual(lin.ceiling(5));
    }
  });
  it("zero-std and balanced filters", () => {
    expect(keepGroup("zero-std", [1, 1, 1], [true, true, true])).toBe(false);
    expect(keepGroup("zero-std", [1, 0, 1], [true, false, true])).toBe(true);
    expect(keepGroup("balanced", [1, 0.5], [false, false])).toBe(false);
    expect(keepGroup("balanced", [1, 0], [true, false])).toBe(true);
    expect(keepGroup("none", [0, 0], [false, false])).toBe(true);
  });
});

describe("options", () => {
  it("presets set the algorithm's defaults; explicit options win", () => {
    expect(resolveOptions({ algo: "dr-grpo" })).toMatchObject({ advantage: "dr-grpo", lossAggregation: "dr-grpo", anchor: "off" });
    expect(resolveOptions({ algo: "anchor" }).anchor).toBe("always");
    expect(resolveOptions({ algo: "grpo", anchor: "always" }).anchor).toBe("always");
  });
  it("errors say how to fix the input", () => {
    expect(() => parseOptions({ lerning_rate: 1 }, "x")).toThrow(/unknown option "lerning_rate"/);
    expect(() => parseOptions({ groupSiz: 4 }, "x")).toThrow(/did you mean "groupSize"/);
    expect(() => parseOptions({ algo: "ppo" }, "x")).toThrow(/"ppo" is not one of grpo \| dr-grpo \| anchor/);
    expect(() => parseOptions({ steps: "ten" }, "x")).toThrow(/steps: expected a number/);
    expect(() => parseOptions({ groupSize: 1 }, "x")).toThrow(/must be >= 2/);
    expect(() => resolveOptions({ minDepth: 4, maxDepth: 2 })).toThrow(OptionsError);
    expect(() => resolveOptions({ anchorCount: 8, groupSize: 8 })).toThrow(/anchorCount/);
  });
  it("LoRA options: checked targets, no silent no-ops, gradient checkpointing true | false | auto, frozen dtype", () => {
    expect(loraConfigOf(resolveOptions({ loraR: 8, loraTargets: "q_proj,v" }))).toEqual({ r: 8, alpha: 16, targets: ["q", "v"] });
    expect(loraConfigOf(resolveOptions({}))).toBeNull();
    expect(() => resolveOptions({ loraR: 8, loraTargets: "q,embed" })).toThrow(/loraTargets: LoRA target "embed"/);
    expect(() => resolveOptions({ loraAlpha: 32 })).toThrow(/--lora-r/);
    expect(() => resolveOptions({ adapter: "a", loraR: 4 })).toThrow(/drop --lora-r/);
    expect(parseOptions({ gradientCheckpointing: "auto" }, "x").gradientCheckpointing).toBe("auto");
    expect(parseOptions({ gradientCheckpointing: "false" }, "x").gradientCheckpointing).toBe(false);
    expect(() => parseOptions({ gradientCheckpointing: "sometimes" }, "x")).toThrow(/true or false or "auto"/);
    expect(() => parseOptions({ progress: "auto" }, "x")).toThrow(/expected true or false,/);
    // The frozen base under LoRA is stored in bf16 unless told otherwise.
    expect(resolveOptions({}).frozenDtype).toBe("bf16");
    expect(parseOptions({ frozenDtype: "f32" }, "x").frozenDtype).toBe("f32");
    expect(() => parseOptions({ frozenDtype: "f16" }, "x")).toThrow(/f32.*bf16|bf16.*f32/);
  });
  it("loads JSON and YAML config files, reporting parse errors with the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-opt-"));
    writeFileSync(join(dir, "a.yaml"), "steps: 7\nalgo: rloo\ntopP: 0.9\n");
    expect(loadOptionsFile(join(dir, "a.yaml"))).toEqual({ steps: 7, algo: "rloo", topP: 0.9 });
    expect(resolveOptions(loadOptionsFile(join(dir, "a.yaml"))).tisCap).toBe(2); // truncated sampling => off-policy correction on
    writeFileSync(join(dir, "b.json"), "{ steps: 3 }");
    expect(() => loadOptionsFile(join(dir, "b.json"))).toThrow(/b\.json does not parse/);
  });
});

describe("seeds", () => {
  it("are deterministic and spread", () => {
    expect(mixSeed(1, 2, 3)).toBe(mixSeed(1, 2, 3));
    expect(mixSeed(1, 2, 3)).not.toBe(mixSeed(1, 3, 2));
    const us = Array.from({ length: 1000 }, (_, i) => uniform(7, i));
    const mean = us.reduce((a, b) => a + b) / us.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});
