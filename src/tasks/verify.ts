// The verifier: parse a completion, normalise its answer, judge it against an instance.
//
// Format: exactly one <think>...</think> followed by exactly one <answer>...</answer>; only
// whitespace may surround them. Anything else (missing, repeated or misordered tags, text
// outside) is a format failure, which also counts as not answering.

import { ABSTAIN, type Instance } from "./types.js";

export interface Parsed {
  ok: boolean;
  think: string;
  answer: string;
  /** Why the format check failed (empty when ok). */
  error: string;
}

const count = (s: string, tag: string): number => s.split(tag).length - 1;

export function parseCompletion(text: string): Parsed {
  const fail = (error: string): Parsed => ({ ok: false, think: "", answer: "", error });
  for (const tag of ["<think>", "</think>", "<answer>", "</answer>"]) {
    const c = count(text, tag);
    if (c === 0) return fail(`missing ${tag}`);
    if (c > 1) return fail(`duplicate ${tag}`);
  }
  const m = text.match(/^\s*<think>([\s\S]*)<\/think>\s*<answer>([\s\S]*)<\/answer>\s*$/);
  if (!m) return fail("expected <think>...</think><answer>...</answer> with nothing else around them");
  return { ok: true, think: m[1]!.trim(), answer: m[2]!.trim(), error: "" };
}

export type Normalized =
  | { kind: "empty" }
  | { kind: "abstain" }
  | { kind: "number"; value: number }
  | { kind: "bool"; value: boolean }
  | { kind: "text"; value: string };

/** Phrases that mean "the premises do not determine it". */
export const ABSTAIN_SYNONYMS: readonly string[] = [
  ABSTAIN, "undetermined", "cannot be determined", "can't be determined", "not determined",
  "indeterminate", "unanswerable", "cannot tell", "cannot be known",
];

/** "11", "11.0", "$11", " 11. " -> 11; "True" -> true; "Unknown" -> abstain; else lowercase text. */
export function normalizeAnswer(raw: string): Normalized {
  const s = raw.trim().replace(/\s+/g, " ").replace(/\.$/, "").trim().toLowerCase();
  if (s === "") return { kind: "empty" };
  if (ABSTAIN_SYNONYMS.includes(s)) return { kind: "abstain" };
  if (s === "true" || s === "false") return { kind: "bool", value: s === "true" };
  const num = s.replace(/^\$\s*/, "").replace(/,(?=\d{3}\b)/g, "");
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/.test(num)) return { kind: "number", value: Number(num) };
  return { kind: "text", value: s };
}

export function sameAnswer(a: Normalized, b: Normalized): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case "empty":
    case "abstain":
      return true;
    case "number":
      return Math.abs(a.value - (b as { value: number }).value) <= 1e-9 * Math.max(1, Math.abs(a.value));
    default:
      return a.value === (b as { value: unknown }).value;
  }
}

export interface Judgement {
  /** The completion has the required tag structure. */
  format: boolean;
  /** It gives a non-empty, non-abstaining answer. */
  answered: boolean;
  /** It abstains ("unknown" or a synonym). */
  abstained: boolean;
  /** Right answer on an answerable item, or abstention on an unanswerable one. */
  correct: boolean;
}

export function judge(inst: Pick<Instance, "answer" | "answerable">, completion: string): Judgement {
  const p = parseCompletion(completion);
  if (!p.ok) return { format: false, answered: false, abstained: false, correct: false };
  const got = normalizeAnswer(p.answer);
  const abstained = got.kind === "abstain";
  const answered = !abstained && got.kind !== "empty";
  const correct = inst.answerable ? answered && sameAnswer(got, normalizeAnswer(inst.answer)) : abstained;
  return { format: true, answered, abstained, correct };
}
