// Inputs checked against the model before any compute: every prompt plus maxNewTokens must fit
// in the model's context (maxPositionEmbeddings). Unchecked, a 1 MB prompt ran for minutes at
// gigabytes of RSS before anything said why, and a prompt near the context silently gets a
// shorter completion budget than maxNewTokens.
//
// Dataset prompts are checked one by one (an error names the line), or with truncatePrompts cut
// to their last tokens (TRL's left truncation: the question comes last in a prompt). Generated
// task prompts are checked on the held-out set and a sample at the deepest training depth.
import type { Tokenizer } from "../model/tokenizer.js";
import type { DatasetLine } from "../tasks/dataset.js";
import { generate as generateInstance } from "../tasks/index.js";
import type { Instance, TaskName } from "../tasks/types.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import { OptionsError, type TrainOptions } from "./options.js";
import { encodeChatPrompt } from "./policy.js";

/** Items named in one error, at most. */
const MAX_LISTED = 5;
/** Generated prompts sampled at the deepest training depth. */
const GENERATED_SAMPLE = 8;

export class InputError extends Error {
  override name = "InputError";
}

/**
 * Checks the run's prompts against the context length; returns the dataset instances (cut to
 * fit when o.truncatePrompts), or null without a dataset.
 */
export function checkPrompts(
  o: TrainOptions,
  dataset: DatasetLine[] | null,
  evalSet: readonly Instance[],
  tokenizer: Tokenizer,
  contextLength: number,
  log: (l: string) => void,
): Instance[] | null {
  const budget = contextLength - o.maxNewTokens;
  if (budget < 1)
    throw new OptionsError(`maxNewTokens (${o.maxNewTokens}) leaves no room for a prompt in the model's context of ${contextLength} tokens: lower --max-new-tokens`);
  const fits = `with --max-new-tokens ${o.maxNewTokens} it exceeds the model's context length ${contextLength} (prompts may be at most ${budget} tokens)`;
  const length = (p: string) => encodeChatPrompt(tokenizer, p).length;

  const generated = [
    ...evalSet,
    ...Array.from({ length: dataset ? 0 : GENERATED_SAMPLE }, (_, i) =>
      generateInstance(o.task as TaskName, { depth: o.maxDepth, seed: mixSeed(o.seed, 0x9e4, i, PURPOSE.prompt) }),
    ),
  ];
  for (const inst of generated) {
    const n = length(inst.prompt);
    if (n > budget)
      throw new OptionsError(`task ${inst.task} makes prompts of ${n} tokens at depth ${inst.depth} (e.g. ${inst.id}); ${fits}. Lower --max-new-tokens or --max-depth / --eval-depth.`);
  }
  if (!dataset) return null;

  const tooLong: { line: number; id: string; n: number }[] = [];
  const out = dataset.map(({ instance, line }) => {
    const n = length(instance.prompt);
    if (n <= budget) return instance;
    tooLong.push({ line, id: instance.id, n });
    return o.truncatePrompts ? { ...instance, prompt: keepEnd(instance.prompt, budget, length) } : instance;
  });
  if (tooLong.length === 0) return out;
  if (o.truncatePrompts) {
    log(`anvil: --truncate-prompts: cut ${tooLong.length} of ${dataset.length} prompts of ${o.dataset} to their last ${budget} tokens (first: line ${tooLong[0]!.line}, ${tooLong[0]!.n} tokens)`);
    return out;
  }
  const listed = tooLong.slice(0, MAX_LISTED).map((t) => `  line ${t.line} (id ${t.id}): prompt of ${t.n} tokens`);
  const more = tooLong.length > MAX_LISTED ? `\n  ... and ${tooLong.length - MAX_LISTED} more` : "";
  throw new InputError(
    `${o.dataset}: ${tooLong.length} prompt${tooLong.length > 1 ? "s are" : " is"} too long: ${fits}\n${listed.join("\n")}${more}\n` +
      `Shorten them, lower --max-new-tokens, or pass --truncate-prompts to keep the last ${budget} tokens of each.`,
  );
}

/** The longest suffix of `prompt` whose encoding fits in `budget` tokens (binary search on the cut). */
function keepEnd(prompt: string, budget: number, length: (p: string) => number): string {
  let lo = 0; // cut at lo: too long (known)
  let hi = prompt.length; // cut at hi: fits (empty)
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (length(prompt.slice(mid)) <= budget) hi = mid;
    else lo = mid;
  }
  // Never start inside a surrogate pair.
  const c = prompt.charCodeAt(hi);
  if (c >= 0xdc00 && c <= 0xdfff) hi++;
  return prompt.slice(hi);
}
