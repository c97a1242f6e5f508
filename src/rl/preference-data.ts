// Preference pairs: TRL's preference format, one JSON object per line,
//   {"prompt": P, "chosen": C, "rejected": R, "score_chosen"?: number, "score_rejected"?: number}
// P, C, R are each a string (standard) or a list of chat messages {role, content}
// (conversational: P the conversation so far, C and R one assistant message each).
// Scores are MaPPO's prior rewards, in [0, 1] with score_chosen >= score_rejected; the prior
// reward gap is their difference, 1 when absent (each MaPPO loss is then its base loss).
//
// Tokens: the prompt goes through the model's chat template with the assistant turn opened
// (as every training prompt does, encodeChatPrompt), a completion is its text then the end
// token (encodeCompletion), so a pair is scored exactly as SFT and GRPO score completions.
import { createHash } from "node:crypto";
import type { ChatMessage, Tokenizer } from "../model/tokenizer.js";
import { DatasetError, parseJsonlLines, readJsonlText, typeName } from "../tasks/dataset.js";
import { packBatch, type PackedBatch, type Sequence } from "./batch.js";
import { encodeChatPrompt, encodeCompletion } from "./policy.js";

export type PreferenceText = string | ChatMessage[];

export interface PreferencePair {
  prompt: PreferenceText;
  chosen: PreferenceText;
  rejected: PreferenceText;
  /** MaPPO's prior rewards in [0, 1] (both or neither). */
  score_chosen?: number;
  score_rejected?: number;
}

/** A pair in tokens, ready to pack: the prompt is shared by both sequences. */
export interface TokenPair {
  chosen: Sequence;
  rejected: Sequence;
  /** Prior reward gap Δr in [0, 1] (1 when unscored). */
  rewardGap: number;
}

/** MaPPO's prior reward gap of a pair: score_chosen - score_rejected, or 1 without scores. */
export const rewardGap = (p: PreferencePair): number => (p.score_chosen === undefined || p.score_rejected === undefined ? 1 : p.score_chosen - p.score_rejected);

/** Pairs with the 1-based line each came from (for errors about a pair later). */
export interface PreferenceData {
  source: string;
  pairs: PreferencePair[];
  lines: number[];
}

/** Reads a preference JSONL file; DatasetError names the file and every bad line. */
export async function readPreferencePairs(path: string): Promise<PreferenceData> {
  return parsePreferencePairs(await readJsonlText(path), path);
}

export function parsePreferencePairs(text: string, source = "pairs"): PreferenceData {
  const items = parseJsonlLines(text, source, 20, parsePair);
  return { source, pairs: items.map((l) => l.item), lines: items.map((l) => l.line) };
}

/** Checks pairs given in memory (the library API) by the same rules; "line" is the 1-based index. */
export function checkPreferencePairs(pairs: readonly PreferencePair[], source = "pairs"): PreferenceData {
  if (pairs.length === 0) throw new DatasetError(source, [{ line: 0, reason: "no preference pairs" }]);
  return parsePreferencePairs(pairs.map((p) => JSON.stringify(p)).join("\n"), source);
}

/** A hash of the pairs' content: names the data a reference cache was computed on. */
export function hashPairs(pairs: readonly PreferencePair[]): string {
  const h = createHash("sha256");
  for (const p of pairs) h.update(JSON.stringify([p.prompt, p.chosen, p.rejected]) + "\n");
  return h.digest("hex").slice(0, 16);
}

function parsePair(raw: string): PreferencePair | string {
  let rec: unknown;
  try {
    rec = JSON.parse(raw);
  } catch (e) {
    return `invalid JSON (${(e as Error).message})`;
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) return `expected a JSON object {prompt, chosen, rejected}, got ${typeName(rec)}`;
  const r = rec as Record<string, unknown>;
  for (const k of ["prompt", "chosen", "rejected"]) {
    if (!(k in r)) return `missing field "${k}"`;
    const why = textError(r[k], k !== "prompt");
    if (why) return `field "${k}" ${why}`;
  }
  const sc = r.score_chosen;
  const sr = r.score_rejected;
  if ((sc === undefined) !== (sr === undefined)) return `give both "score_chosen" and "score_rejected", or neither`;
  if (sc !== undefined) {
    for (const [k, v] of [["score_chosen", sc], ["score_rejected", sr]] as const)
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1) return `field "${k}" must be a number in [0, 1] (MaPPO's prior reward; normalise scores to [0, 1]), got ${JSON.stringify(v)}`;
    if ((sc as number) < (sr as number)) return `score_chosen (${sc}) is below score_rejected (${sr}): the chosen completion must score at least as high`;
  }
  return { prompt: r.prompt as PreferenceText, chosen: r.chosen as PreferenceText, rejected: r.rejected as PreferenceText, ...(sc !== undefined ? { score_chosen: sc as number, score_rejected: sr as number } : {}) };
}

/** Why a prompt / completion value is not valid, or null. Completions are one assistant message. */
function textError(v: unknown, completion: boolean): string | null {
  if (typeof v === "string") return v === "" && !completion ? "is empty" : null;
  if (!Array.isArray(v)) return `must be a string or a list of chat messages, got ${typeName(v)}`;
  if (v.length === 0) return "is an empty message list";
  for (const [i, m] of v.entries()) {
    if (typeof m !== "object" || m === null || typeof (m as ChatMessage).role !== "string" || typeof (m as ChatMessage).content !== "string")
      return `message ${i} must be {"role": string, "content": string}`;
  }
  if (completion && (v.length !== 1 || (v[0] as ChatMessage).role !== "assistant")) return `must be one assistant message [{"role": "assistant", "content": ...}]`;
  return null;
}

/** The pair in tokens under the model's tokenizer and chat template. */
export function encodePair(tokenizer: Tokenizer, p: PreferencePair): TokenPair {
  const promptIds = encodePromptOf(tokenizer, p.prompt);
  const completion = (c: PreferenceText) => encodeCompletion(tokenizer, typeof c === "string" ? c : c[0]!.content);
  return { chosen: { promptIds, completionIds: completion(p.chosen) }, rejected: { promptIds, completionIds: completion(p.rejected) }, rewardGap: rewardGap(p) };
}

function encodePromptOf(tokenizer: Tokenizer, prompt: PreferenceText): number[] {
  if (typeof prompt === "string") return encodeChatPrompt(tokenizer, prompt);
  if (!tokenizer.hasChatTemplate) throw new Error("a conversational pair (a message-list prompt) needs a model whose tokenizer has a chat template; give the prompt as a string instead");
  return tokenizer.encode(tokenizer.applyChatTemplate(prompt, { addGenerationPrompt: true }));
}

/**
 * Encodes every pair, checking each fits the model's context (`maxTokens`): an error names the
 * file and the lines of the pairs that do not.
 */
export function encodePairs(tokenizer: Tokenizer, maxTokens: number, data: PreferenceData): TokenPair[] {
  const errors: { line: number; reason: string }[] = [];
  const out = data.pairs.map((p, i) => {
    const line = data.lines[i] ?? i + 1;
    let t: TokenPair;
    try {
      t = encodePair(tokenizer, p);
    } catch (e) {
      errors.push({ line, reason: (e as Error).message });
      return null;
    }
    const longest = Math.max(t.chosen.completionIds.length, t.rejected.completionIds.length) + t.chosen.promptIds.length;
    if (longest > maxTokens) errors.push({ line, reason: `prompt + completion is ${longest} tokens, over the model's context of ${maxTokens}` });
    return t;
  });
  if (errors.length) throw new DatasetError(data.source, errors.slice(0, 20), errors.length > 20);
  return out as TokenPair[];
}

/**
 * One packed batch of k pairs: rows 0..k-1 are the chosen completions, rows k..2k-1 the
 * rejected ones (TRL's concatenated layout), so both are scored in one forward pass.
 */
export function packPairs(pairs: readonly TokenPair[], padId: number): PackedBatch {
  return packBatch([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], padId);
}
