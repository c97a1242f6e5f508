// Drill sheets (tasks/sheet.ts): arithmetic sheets carry GraphLA's trace computations with their
// right values, link sheets quote the one premise relating each pair they ask for, and the
// experiments' SFT stream adds them to GraphLA's batches only, after the same task items.
import { describe, expect, it } from "vitest";
import { sftStream } from "../src/rl/sft.js";
import { graphlaProblem, generate } from "../src/tasks/index.js";
import { parseSentenceLA, traceLA } from "../src/tasks/graphla.js";
import { dishesOf } from "../src/tasks/solve-la.js";
import { arithmeticSheet, linkSheet, SHEET_STEPS } from "../src/tasks/sheet.js";
import { completionFor } from "../src/tasks/types.js";
import { mixSeed, PURPOSE } from "../src/util/seed.js";

/** Exact value of a trace expression: integers, + - * / and parentheses only. */
const value = (expr: string): number => {
  expect(expr).toMatch(/^[\d+\-*/() ]+$/);
  return Function(`return (${expr});`)() as number;
};

describe("arithmetic sheets", () => {
  it("trace steps are the trace's own computations, each right", () => {
    let n = 0;
    for (let seed = 0; seed < 60; seed++) {
      const p = graphlaProblem({ depth: 1 + (seed % 5), seed });
      const { trace, steps } = traceLA(p.premises, p.target);
      expect(trace).toBe(p.instance.trace);
      const written = [...trace.matchAll(/, so [A-Z][a-z]+ = (.+?) = (-?\d+)\.$/gm)].map((m) => ({ expr: m[1], value: m[2] }));
      expect(steps).toEqual(written);
      for (const s of steps) expect(value(s.expr)).toBe(Number(s.value));
      n += steps.length;
    }
    expect(n).toBeGreaterThan(60);
  });

  it("a sheet lists 16 computations and its completion works each out, deterministically", () => {
    for (const seed of [0, 1, 77, 123456]) {
      const sheet = arithmeticSheet(seed);
      expect(arithmeticSheet(seed)).toEqual(sheet);
      const asked = sheet.prompt.split("\n").slice(1).map((l) => l.replace(/^- /, ""));
      const lines = sheet.trace.split("\n");
      expect(asked).toHaveLength(SHEET_STEPS);
      expect(lines).toHaveLength(SHEET_STEPS);
      lines.forEach((l, i) => {
        const [expr, v] = l.split(" = ");
        expect(expr).toBe(asked[i]);
        expect(value(expr!)).toBe(Number(v));
      });
      expect(completionFor(sheet)).toMatch(/^<think>- .* = -?\d+\n[^]*<\/think><answer>done<\/answer>$/);
    }
    expect(arithmeticSheet(1).trace).not.toBe(arithmeticSheet(2).trace);
  });

  it("a link sheet asks for each pair one two-dish premise relates and quotes that premise, deterministically", () => {
    let asked = 0;
    const orders = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const sheet = linkSheet(seed);
      expect(linkSheet(seed)).toEqual(sheet);
      const lines = sheet.prompt.split("\n");
      const premises = lines.slice(2, lines.indexOf("Pairs:")).map((l) => l.replace(/^- /, ""));
      const pairs = lines.slice(lines.indexOf("Pairs:") + 1).map((l) => l.replace(/^- /, ""));
      const answers = sheet.trace.split("\n");
      expect(answers).toHaveLength(pairs.length);
      answers.forEach((a, i) => {
        const [pair, quote] = a.split(", with ");
        expect(pair).toBe(pairs[i]);
        const [x, y] = pair!.split(" and ");
        expect(premises).toContain(quote);
        // the quoted premise relates exactly these two dishes, and no other two-dish premise does
        const relating = premises.map(parseSentenceLA).filter((r) => (r.kind === "affine" || r.kind === "half") && new Set([...dishesOf(r), x!, y!]).size === 2);
        expect(relating).toEqual([parseSentenceLA(quote!)]);
        orders.add(dishesOf(relating[0]!)[0] === x ? "as written" : "reversed");
      });
      asked += pairs.length;
    }
    expect(asked).toBeGreaterThan(80);
    expect(orders.size).toBe(2);
  });

  it("the SFT stream adds sheets after GraphLA's items only, leaving the items as they were", () => {
    const la = sftStream("graphla", { seed: 1, minDepth: 1, maxDepth: 2, items: 16, sheets: 4, links: 2 });
    const li = sftStream("graphli", { seed: 1, minDepth: 1, maxDepth: 2, items: 16, sheets: 4, links: 2 });
    expect(la.batch).toBe(22);
    expect(li.batch).toBe(16);
    for (const s of [0, 9]) {
      for (let j = 0; j < 16; j++) {
        const want = { depth: 1 + (mixSeed(1, s, j, PURPOSE.sft, 1) % 2), seed: mixSeed(1, s, j, PURPOSE.sft) };
        expect(la.instances(s, j)).toEqual(generate("graphla", want));
        expect(li.instances(s, j)).toEqual(generate("graphli", want));
      }
      for (let j = 16; j < 22; j++) expect(la.instances(s, j).task).toBe("sheet");
      for (let j = 16; j < 20; j++) expect(la.instances(s, j).id).toMatch(/^sheet-/);
      for (let j = 20; j < 22; j++) expect(la.instances(s, j).id).toMatch(/^links-/);
    }
    expect(la.instances(0, 16).trace).not.toBe(la.instances(0, 17).trace);
  });
});
