import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { RewardPool, scoreBatch, WORKER_URL } from "../src/rewards/pool.js";
import { BUILTIN_REWARDS, DEFAULT_REWARDS, parseRewardSpecs, weightedSum } from "../src/rewards/rewards.js";
import { judge } from "../src/tasks/verify.js";
import type { Instance } from "../src/tasks/types.js";

const fixture = (name: string) => join(import.meta.dirname, "fixtures", "rewards", name);

const inst = (answer: string): Instance => ({
  id: `t-${answer}`, task: "custom", prompt: "p", answer, trace: "", depth: 1, distractors: 0,
  answerable: answer !== "unknown", seed: 0,
});
const ans = inst("11");
const unans = inst("unknown");
const c = (a: string) => `<think>t</think><answer>${a}</answer>`;

describe("built-in rewards", () => {
  const table: [Instance, string, number, number, number][] = [
    // instance, completion, correct, honesty, format
    [ans, c("11"), 1, 1, 1],
    [ans, c("12"), 0, -1, 1],
    [ans, c("unknown"), 0, 0, 0], // the format term never pays an abstention where an answer exists
    [ans, c(""), 0, -1, 1],
    [ans, "11", 0, -1, 0],
    [unans, c("unknown"), 1, 1, 1],
    [unans, c("11"), 0, -1, 1],
    [unans, "unknown", 0, -1, 0],
  ];
  test.each(table)("%#", (i, completion, correct, honesty, format) => {
    const j = judge(i, completion);
    expect(BUILTIN_REWARDS.correct(j, i)).toBe(correct);
    expect(BUILTIN_REWARDS.honesty(j, i)).toBe(honesty);
    expect(BUILTIN_REWARDS.format(j, i)).toBe(format);
  });

  test("the default is the paper's outcome reward, under which always-unknown is not optimal", () => {
    expect(DEFAULT_REWARDS).toEqual([{ name: "correct", weight: 1 }]);
    // A policy that always abstains, on a half-unanswerable set, under each reward: the paper's
    // binary reward gives it 0.5 (less than answering right); honesty+format gave it 0.55 > 0.
    const mean = (spec: string) => {
      const specs = parseRewardSpecs(spec);
      const r = (i: Instance) => {
        const j = judge(i, c("unknown"));
        return weightedSum(specs, Object.fromEntries(specs.map((s) => [s.name, BUILTIN_REWARDS[s.name as "correct"](j, i)])));
      };
      return (r(ans) + r(unans)) / 2;
    };
    expect(mean("correct")).toBe(0.5);
    expect(mean("honesty:1,format:0.1")).toBeCloseTo(0.55, 12);
  });

  test("weighted sums", async () => {
    const specs = parseRewardSpecs("honesty:1, format:0.5,correct");
    expect(specs).toEqual([{ name: "honesty", weight: 1 }, { name: "format", weight: 0.5 }, { name: "correct", weight: 1 }]);
    expect(weightedSum(specs, { honesty: -1, format: 1, correct: 0 })).toBe(-0.5);
    const res = await scoreBatch([ans, ans, unans], [c("11"), c("12"), "junk"], { rewards: specs });
    expect(res.rewards).toEqual([2.5, -0.5, -1]);
    expect(res.failures).toEqual([]);
    expect(res.details[1]!.components).toEqual({ honesty: -1, format: 1, correct: 0 });
  });

  test("bad specs are rejected with a fix", () => {
    expect(() => parseRewardSpecs("honest")).toThrow(/unknown reward "honest".*honesty/);
    expect(() => parseRewardSpecs("")).toThrow(/at least one/);
    expect(parseRewardSpecs("./r.mjs:2")).toEqual([{ name: "./r.mjs", weight: 2 }]);
  });
});

describe("user reward modules in the pool", () => {
  const pools: RewardPool[] = [];
  afterAll(async () => {
    for (const p of pools) await p.close();
  });
  const make = async (...specs: [string, number][]) => {
    const p = await RewardPool.create({ rewards: specs.map(([name, weight]) => ({ name, weight })), timeoutMs: 300, threads: 2 });
    pools.push(p);
    return p;
  };

  // piscina require()s the worker; were it an ES module, Node (>= 20.19) would load it through a
  // facade that aborts the process if the pool terminates the thread mid-load (a CI run died so).
  test("the worker is CommonJS: require() gives the handler itself", () => {
    const handler: unknown = createRequire(import.meta.url)(fileURLToPath(WORKER_URL));
    expect(typeof handler).toBe("function");
  });

  test("default and named exports, sync and async, mixed with built-ins", async () => {
    const pool = await make(["honesty", 1], [fixture("length.mjs"), 10], [fixture("named.mjs"), 0.5]);
    const comps = [c("11"), c("1")];
    const res = await pool.scoreBatch([ans, ans], comps);
    expect(res.failures).toEqual([]);
    expect(res.details[0]!.components[fixture("length.mjs")]).toBeCloseTo(1 / (1 + comps[0]!.length));
    expect(res.rewards[0]).toBeCloseTo(1 + 10 / (1 + comps[0]!.length) + 1);
    expect(res.rewards[1]).toBeCloseTo(-1 + 10 / (1 + comps[1]!.length) - 1);
  });

  test("a throwing reward costs only its sample", async () => {
    const failures: unknown[] = [];
    const pool = await RewardPool.create({ rewards: [{ name: "format", weight: 1 }, { name: fixture("throws.mjs"), weight: 1 }], onFailure: (f) => failures.push(f) });
    pools.push(pool);
    const res = await pool.scoreBatch([ans, ans, ans], [c("11"), c("BOOM"), c("11")]);
    expect(res.rewards).toEqual([2, 1, 2]);
    expect(res.failures).toEqual([{ index: 1, reward: fixture("throws.mjs"), reason: "threw: boom" }]);
    expect(failures).toEqual(res.failures);
    expect(res.details.map((d) => d.failed)).toEqual([false, true, false]);
  });

  test("non-numbers and NaN are failures", async () => {
    const pool = await make([fixture("bad-return.mjs"), 1]);
    const res = await pool.scoreBatch([ans, ans], ["x", "NAN"]);
    expect(res.rewards).toEqual([0, 0]);
    expect(res.failures.map((f) => f.reason)).toEqual(["returned string, expected a finite number", "returned NaN, expected a finite number"]);
  });

  test("a hanging reward times out, the batch finishes, the pool recovers", async () => {
    const pool = await make(["correct", 1], [fixture("hangs.mjs"), 1]);
    const t0 = Date.now();
    const res = await pool.scoreBatch([ans, ans, ans, ans], [c("11"), c("11 HANG"), c("11 WAIT"), c("11")]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(res.rewards).toEqual([2, 0, 0, 2]);
    expect(res.failures.map((f) => [f.index, f.reason])).toEqual([
      [1, "timed out after 300 ms"],
      [2, "timed out after 300 ms"],
    ]);
    // Both workers were terminated and replaced: the same pool keeps scoring.
    for (let round = 0; round < 2; round++) {
      const again = await pool.scoreBatch([ans, ans, ans], [c("11"), c("12"), c("11")]);
      expect(again.failures).toEqual([]);
      expect(again.rewards).toEqual([2, 1, 2]);
    }
    // And it survives another hang.
    const third = await pool.scoreBatch([ans, ans], [c("HANG"), c("11")]);
    expect(third.rewards).toEqual([0, 2]);
  });

  test("a reward that exhausts its worker's heap or exits costs only its sample; the worker is replaced", async () => {
    const failures: unknown[] = [];
    const pool = await RewardPool.create({ rewards: [{ name: "correct", weight: 1 }, { name: fixture("crashes.mjs"), weight: 1 }], timeoutMs: 20_000, heapMb: 32, threads: 2, onFailure: (f) => failures.push(f) });
    pools.push(pool);
    const res = await pool.scoreBatch([ans, ans, ans, ans, ans], [c("11"), c("11 OOM"), c("11"), c("11 EXIT"), c("12")]);
    expect(res.rewards).toEqual([2, 0, 2, 0, 1]); // correct + module; a failed term counts 0
    expect(res.failures.map((f) => f.index)).toEqual([1, 3]);
    expect(res.failures[0]!.reason).toMatch(/ran out of memory \(the worker heap limit is 32 MB; raise --reward-heap-mb/);
    expect(res.failures[1]!.reason).toMatch(/exited with code: 7/);
    expect(failures).toHaveLength(2);
    // Replaced workers keep scoring, and survive another crash.
    for (let round = 0; round < 2; round++) {
      const again = await pool.scoreBatch([ans, ans], [c("11"), c(round ? "OOM" : "11")]);
      expect(again.rewards).toEqual(round ? [2, 0] : [2, 2]);
    }
  }, 30_000);

  test("the heap limit is checked", async () => {
    await expect(RewardPool.create({ rewards: [{ name: fixture("crashes.mjs"), weight: 1 }], heapMb: 8 })).rejects.toThrow(/heapMb must be an integer >= 16/);
  });

  test("unusable modules fail at creation with the reason", async () => {
    await expect(RewardPool.create({ rewards: [{ name: fixture("no-export.mjs"), weight: 1 }] })).rejects.toThrow(/exports neither/);
    await expect(RewardPool.create({ rewards: [{ name: fixture("missing.mjs"), weight: 1 }] })).rejects.toThrow(/not found/);
  });

  test("mismatched batch sizes are an error", async () => {
    const pool = await make(["format", 1]);
    await expect(pool.scoreBatch([ans], [])).rejects.toThrow(/1 instances but 0 completions/);
  });
});
