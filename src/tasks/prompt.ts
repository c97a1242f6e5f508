// The one prompt format shared by every task (and by user datasets that want to look alike).

/** The output-format instruction; the verifier (verify.ts) parses exactly this shape. */
export const FORMAT_INSTRUCTION =
  "Reason inside <think></think>, then reply inside <answer></answer>. " +
  "If the premises do not determine the answer, reply unknown.";

export function formatPrompt(premises: readonly string[], question: string): string {
  return `Premises:\n${premises.join("\n")}\nQuestion: ${question}\n${FORMAT_INSTRUCTION}`;
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
