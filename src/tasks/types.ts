// What every task generator produces and every verifier consumes.
import { bulleted } from "./prompt.js";

export const TASK_NAMES = ["graphla", "graphli"] as const;
export type TaskName = (typeof TASK_NAMES)[number];

/** The literal answer for "the premises do not determine it". */
export const ABSTAIN = "unknown";

export interface Instance {
  /** Stable id: `${task}-${seed}`. */
  id: string;
  task: TaskName | string;
  /** The user prompt (premises + question + output-format instruction). */
  prompt: string;
  /** Expected answer: a value ("17", "true", "false") or ABSTAIN when unanswerable. */
  answer: string;
  /** Step-by-step ground-truth reasoning, the body of <think>...</think>. */
  trace: string;
  /** Derivation length of the target. */
  depth: number;
  /** Number of irrelevant premises. */
  distractors: number;
  answerable: boolean;
  seed: number;
}

export interface GenerateOptions {
  /** Derivation length (>= 1). */
  depth: number;
  /** Irrelevant premises added (default: depth). */
  distractors?: number;
  seed: number;
  /** Force answerable / unanswerable; default: decided by the seed (half and half). */
  answerable?: boolean;
  /** Unanswerable items: distance from the target (0 = the target's own premise) of the broken
   * link, in [0, depth - 1]; default: uniform, decided by the seed. Ignored when answerable. */
  cutDepth?: number;
}

/** The ground-truth completion the model is trained to produce. */
export function completionFor(inst: Pick<Instance, "trace" | "answer">): string {
  const think = inst.trace === "" ? "" : bulleted(inst.trace.split("\n"));
  return `<think>${think}</think><answer>${inst.answer}</answer>`;
}
