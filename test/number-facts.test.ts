// Number facts: the drill items are the trace's own computed steps, and a model made with them is
// written whole.
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { factsOf, factStream, makeTaskModel } from "../src/rl/number-facts.js";
import { generate } from "../src/tasks/index.js";
import { completionFor } from "../src/tasks/types.js";

describe("number facts", () => {
  it("drills every computed step of GraphLA's traces, with the trace's own chain", () => {
    let facts = 0;
    for (let seed = 0; seed < 60; seed++) {
      const inst = generate("graphla", { depth: 1 + (seed % 4), seed, answerable: seed % 2 === 0 });
      const fs = factsOf(inst.trace);
      expect(fs).toHaveLength(inst.trace.split(", so ").length - 1);
      for (const f of fs) {
        for (const e of f.chain) expect(String(Function(`return (${e})`)())).toBe(f.value);
        expect(inst.trace).toContain(` = ${f.chain.join(" = ")} = ${f.value}.`);
      }
      facts += fs.length;
    }
    expect(facts).toBeGreaterThan(100);
    expect(factsOf(generate("graphli", { depth: 3, seed: 1 }).trace)).toEqual([]);
    expect(() => factStream("graphli", 1)(0)).toThrow(/no number facts/);
    const item = factStream("graphla", 1)(0);
    expect(item.prompt).toMatch(/^Compute [-+*/() \d]+\.$/);
    expect(completionFor(item)).toMatch(new RegExp(`^<think>- ${item.prompt.slice(8, -1).replace(/[()*+/]/g, "\\$&")}( = [-+*/() \\d]+)* = ${item.answer}</think><answer>${item.answer}</answer>$`));
  });

  it("streams are deterministic per seed and differ across seeds", () => {
    const a = factStream("graphla", 1), b = factStream("graphla", 1), c = factStream("graphla", 2);
    const take = (s: (i: number) => { prompt: string }) => Array.from({ length: 50 }, (_, i) => s(i).prompt);
    expect(take(a)).toEqual(take(b));
    expect(take(c)).not.toEqual(take(a));
  });

  it("makes a model with its number facts, leaving nothing half-written; refuses to overwrite", async () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-facts-"));
    const out = join(dir, "m");
    const lines: string[] = [];
    await makeTaskModel({ task: "graphla", preset: "tiny", out, seed: 1, threads: 1, numberFacts: 2, log: (l) => lines.push(l) });
    expect(existsSync(join(out, "model.safetensors")) && existsSync(join(out, "tokenizer.json"))).toBe(true);
    expect(readdirSync(dir)).toEqual(["m"]);
    expect(lines.join("\n")).toMatch(/number facts right on \d+\.\d% of 256 held-out trace steps/);
    await expect(makeTaskModel({ task: "graphla", preset: "tiny", out, seed: 1, threads: 1, numberFacts: 0, log: () => {} })).rejects.toThrow(/already holds a model/);
    await makeTaskModel({ task: "graphli", preset: "tiny", out, seed: 1, threads: 1, log: () => {}, init: { overwrite: true } });
    expect(readdirSync(dir)).toEqual(["m"]);
    await expect(makeTaskModel({ task: "graphli", preset: "tiny", out: join(dir, "n"), seed: 1, threads: 1, numberFacts: 2, log: () => {} })).rejects.toThrow(/no number facts/);
    expect(readdirSync(dir)).toEqual(["m"]);
  }, 120_000);
});
