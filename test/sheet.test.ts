// Arithmetic sheets (tasks/sheet.ts) carry GraphLA's trace computations with their right values,
// and the experiments' SFT stream adds them to GraphLA's batches only, after the same task items.
import { describe, expect, it } from "vitest";
import { sftStream } from "../src/rl/sft.js";
import { graphlaProblem, generate } from "../src/tasks/index.js";
import { traceLA } from "../src/tasks/graphla.js";
import { arithmeticSheet, SHEET_STEPS } from "../src/tasks/sheet.js";
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

  it("the SFT stream adds sheets after GraphLA's items only, leaving the items as they were", () => {
    const la = sftStream("graphla", { seed: 1, minDepth: 1, maxDepth: 2, items: 16, sheets: 4 });
    const li = sftStream("graphli", { seed: 1, minDepth: 1, maxDepth: 2, items: 16, sheets: 4 });
    expect(la.batch).toBe(20);
    expect(li.batch).toBe(16);
    for (const s of [0, 9]) {
      for (let j = 0; j < 16; j++) {
        const want = { depth: 1 + (mixSeed(1, s, j, PURPOSE.sft, 1) % 2), seed: mixSeed(1, s, j, PURPOSE.sft) };
        expect(la.instances(s, j)).toEqual(generate("graphla", want));
        expect(li.instances(s, j)).toEqual(generate("graphli", want));
      }
      for (let j = 16; j < 20; j++) expect(la.instances(s, j).task).toBe("sheet");
    }
    expect(la.instances(0, 16).trace).not.toBe(la.instances(0, 17).trace);
  });
});
