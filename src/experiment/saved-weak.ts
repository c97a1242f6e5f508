// Weak starts shipped with the package (results/weak-starts/<task>/, each made by the full
// experiment's own SFT): what lets `anvil experiment anchor-vs-grpo --quick` skip the 15-50
// minutes of SFT a weak start costs on 2 cores. A saved one is taken only when it was made for
// the items, traces and tokenizer this version generates (the same fingerprint); otherwise the
// experiment makes its own, as the full run does.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PRESETS, type Preset } from "../model/init.js";
import { fitTokenizer } from "../model/tokenizer.js";
import { generate, taskTokenizerInput } from "../tasks/index.js";
import { completionFor, type TaskName } from "../tasks/types.js";
import { readJsonFileSync } from "../util/json-file.js";
import { packageRoot } from "../util/package-root.js";

/** Where the package keeps a task's saved weak start. */
export const savedWeakDir = (task: TaskName): string => join(packageRoot(), "results", "weak-starts", task);

/**
 * What a weak start depends on besides its SFT: the preset's shape, the tokenizer fitted to the
 * task, and the text of the task's items and traces (a few of each depth up to the training depth).
 */
export function weakFingerprint(task: TaskName, preset: Preset, depth: number): string {
  const { corpus, phrases } = taskTokenizerInput(task);
  const shape = PRESETS[preset];
  const tokenizer = fitTokenizer(corpus, { vocabSize: shape.vocabSize, modelMaxLength: shape.maxPositionEmbeddings, phrases }).tokenizer;
  const items: string[] = [];
  for (let d = 1; d <= depth; d++)
    for (let seed = 0; seed < 6; seed++) {
      const inst = generate(task, { depth: d, seed, answerable: seed % 2 === 0 });
      items.push(inst.prompt, completionFor(inst));
    }
  return createHash("sha256").update(JSON.stringify({ shape, tokenizer, items })).digest("hex");
}

/** The saved weak start of `task` if it matches this version's (else null, and why in `log`). */
export function savedWeakStart(task: TaskName, preset: Preset, depth: number, log: (line: string) => void): string | null {
  const dir = savedWeakDir(task);
  const meta = join(dir, "weak.json");
  if (!existsSync(meta) || !existsSync(join(dir, "model.safetensors"))) return null;
  const saved = readJsonFileSync<{ info?: { fingerprint?: string } }>(meta).info?.fingerprint;
  if (saved === weakFingerprint(task, preset, depth)) return dir;
  log(`the saved weak start of ${task} (${dir}) was made for other items, traces, tokenizer, preset or depth: making a new one by SFT`);
  return null;
}
