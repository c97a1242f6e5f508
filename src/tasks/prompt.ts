// The one prompt format shared by every task (and by user datasets that want to look alike).

/** The output-format instruction; the verifier (verify.ts) parses exactly this shape. */
export const FORMAT_INSTRUCTION =
  "Reason inside <think></think>, then reply inside <answer></answer>. " +
  "If the premises do not determine the answer, reply unknown.";

/**
 * Lines of premises and of ground-truth traces start with this bullet, so an entity name is the
 * same token wherever it appears (" rain" after a space; a name at a line start would be "rain",
 * a different token of the byte-level BPE, which makes copying it much harder to learn).
 */
export const BULLET = "- ";

export const bulleted = (lines: readonly string[]): string => lines.map((l) => BULLET + l).join("\n");

/** "[1]", "[2]", ... for the flagged premises in order, "" for the others. A numbered premise's
 * trace line starts with its label, so the next premise to copy is found by counting and one
 * look-up of "[k]" in the prompt (tasks/index.ts keeps each label one token). */
export function premiseLabels(numbered: readonly boolean[]): string[] {
  let n = 0;
  return numbered.map((f) => (f ? `[${++n}]` : ""));
}

/** Prefixes each line with its label, when it has one. */
export const labelled = (lines: readonly string[], labels: readonly string[]): string[] =>
  lines.map((l, k) => (labels[k] ? `${labels[k]} ${l}` : l));

/** The question comes last, right before the answer starts: the first thing the model writes
 * is the target's name, and a small model copies it far more easily from a few tokens back. */
export function formatPrompt(premises: readonly string[], question: string): string {
  return `${FORMAT_INSTRUCTION}\nPremises:\n${bulleted(premises)}\nQuestion: ${question}`;
}

/** Inverse of formatPrompt: the premise sentences and the question. */
export function splitPrompt(prompt: string): { premises: string[]; question: string } {
  const lines = prompt.split("\n");
  const qi = lines.findIndex((l) => l.startsWith("Question:"));
  const pi = lines.findIndex((l) => l.startsWith("Premises:"));
  if (qi < 0 || pi < 0 || pi > qi) throw new Error("prompt has no 'Premises:' ... 'Question:' layout");
  const premises = lines
    .slice(pi + 1, qi)
    .map((l) => (l.startsWith(BULLET) ? l.slice(BULLET.length) : l).trim())
    .filter((l) => l.length > 0);
  return { premises, question: lines[qi]!.slice("Question:".length).trim() };
}

/** Checks the knobs every generator shares; errors name the option and its range. */
export function checkOptions(
  task: string,
  opts: { depth: number; distractors?: number; seed: number },
  maxDepth: number,
  maxDistractors: number,
): { depth: number; distractors: number; seed: number } {
  const { depth, seed } = opts;
  const distractors = opts.distractors ?? depth;
  if (!Number.isInteger(depth) || depth < 1 || depth > maxDepth)
    throw new RangeError(`${task}: depth must be an integer in [1, ${maxDepth}], got ${depth}`);
  if (!Number.isInteger(distractors) || distractors < 0 || distractors > maxDistractors)
    throw new RangeError(
      `${task}: distractors must be an integer in [0, ${maxDistractors}], got ${distractors}`,
    );
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`${task}: seed must be a non-negative safe integer, got ${seed}`);
  return { depth, distractors, seed };
}
