import { describe, expect, test } from "vitest";
import { judge, normalizeAnswer, parseCompletion } from "../src/tasks/verify.js";

describe("parseCompletion", () => {
  test("accepts the format with surrounding whitespace", () => {
    const p = parseCompletion("  \n<think> a\nb </think>\n <answer> 11 </answer>\n");
    expect(p).toEqual({ ok: true, think: "a\nb", answer: "11", error: "" });
  });
  test.each([
    ["<answer>1</answer>", /missing <think>/],
    ["<think>x</think>", /missing <answer>/],
    ["<think>x</think><think>y</think><answer>1</answer>", /duplicate <think>/],
    ["<think>x</think><answer>1</answer><answer>2</answer>", /duplicate <answer>/],
    ["<answer>1</answer><think>x</think>", /expected/],
    ["hi <think>x</think><answer>1</answer>", /expected/],
    ["<think>x</think> so <answer>1</answer>", /expected/],
  ])("rejects %j", (text, why) => {
    const p = parseCompletion(text);
    expect(p.ok).toBe(false);
    expect(p.error).toMatch(why);
  });
});

describe("normalizeAnswer", () => {
  test("numbers", () => {
    for (const s of ["11", "11.0", "$11", " 11. ", "+11", "$ 11.00"]) expect(normalizeAnswer(s)).toEqual({ kind: "number", value: 11 });
    expect(normalizeAnswer("-3")).toEqual({ kind: "number", value: -3 });
    expect(normalizeAnswer("1,000")).toEqual({ kind: "number", value: 1000 });
    expect(normalizeAnswer("11 dollars").kind).toBe("text");
  });
  test("booleans, abstention, empty", () => {
    expect(normalizeAnswer("TRUE")).toEqual({ kind: "bool", value: true });
    expect(normalizeAnswer("False.")).toEqual({ kind: "bool", value: false });
    for (const s of ["unknown", "Unknown", "UNKNOWN.", "cannot be determined"]) expect(normalizeAnswer(s).kind).toBe("abstain");
    expect(normalizeAnswer("  ").kind).toBe("empty");
  });
});

describe("judge", () => {
  const num = { answer: "11", answerable: true };
  const bool = { answer: "false", answerable: true };
  const none = { answer: "unknown", answerable: false };
  const c = (a: string) => `<think>t</think><answer>${a}</answer>`;
  test("answerable items", () => {
    expect(judge(num, c("$11.0"))).toEqual({ format: true, answered: true, abstained: false, correct: true });
    expect(judge(num, c("12"))).toEqual({ format: true, answered: true, abstained: false, correct: false });
    expect(judge(num, c("unknown"))).toEqual({ format: true, answered: false, abstained: true, correct: false });
    expect(judge(num, c(""))).toEqual({ format: true, answered: false, abstained: false, correct: false });
    expect(judge(num, "11")).toEqual({ format: false, answered: false, abstained: false, correct: false });
    expect(judge(bool, c("False")).correct).toBe(true);
    expect(judge(bool, c("true")).correct).toBe(false);
    expect(judge(bool, c("0")).correct).toBe(false);
  });
  test("abstention is correct only on unanswerable items", () => {
    expect(judge(none, c("Unknown"))).toEqual({ format: true, answered: false, abstained: true, correct: true });
    expect(judge(none, c("11")).correct).toBe(false);
    expect(judge(none, c("unknown") + "x").correct).toBe(false);
  });
});
