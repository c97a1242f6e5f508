// Tokenizers: loading Hugging Face tokenizer.json / tokenizer_config.json (through
// @huggingface/tokenizers), chat templates (@huggingface/jinja), and fitting a small byte-level
// BPE tokenizer to a task corpus, written in the same HF format so it loads anywhere.
//
// Library facts this relies on (@huggingface/tokenizers 0.2.0, read from its source):
// - `new Tokenizer(tokenizerJson, tokenizerConfig)`; `encode(text, {add_special_tokens})` returns
//   {ids, tokens, attention_mask}; `decode(ids, {skip_special_tokens})` throws on an empty list.
// - decode applies `clean_up_tokenization_spaces` (default TRUE when the config omits it), which
//   rewrites " ." to "." etc.; fitted tokenizers set it to false so decode(encode(s)) == s.
// - added tokens are split out before pre-tokenization; BPE merges may be "a b" strings or pairs.

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { writeFileAtomic } from "../util/atomic.js";

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant turn header so the model continues as the assistant. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking` for Qwen3 templates). */
  variables?: Record<string, unknown>;
}

type Json = Record<string, unknown>;

/** A special-token field of tokenizer_config.json: a string, an AddedToken dict, or null. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json)["content"] === "string") return (v as Json)["content"] as string;
  return null;
}

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new TokenizerError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: malformed JSON: ${(e as Error).message}`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) throw new TokenizerError(`${path}: expected a JSON object`);
  return json as Json;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates. */
function pickChatTemplate(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v as Array<{ name?: unknown; template?: unknown }>;
    const def = named.find((t) => t.name === "default") ?? named[0];
    if (def && typeof def.template === "string") return def.template;
  }
  return null;
}

export class Tokenizer {
  private readonly hf: HFTokenizer;
  private readonly template: Template | null;
  /** Number of token ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly imStartId: number | null;
  readonly imEndId: number | null;
  /** Ids of tokens marked special (skipped by decode with skipSpecialTokens). */
  readonly specialTokenIds: ReadonlySet<number>;

  constructor(
    readonly tokenizerJson: Json,
    readonly tokenizerConfig: Json,
    chatTemplate?: string | null,
  ) {
    try {
      this.hf = new HFTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`cannot build tokenizer: ${(e as Error).message}`);
    }
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const idOf = (tok: string | null, field: string): number | null => {
      if (tok === null) return null;
      const id = this.hf.token_to_id(tok);
      if (id === undefined) throw new TokenizerError(`tokenizer_config.json: ${field} ${JSON.stringify(tok)} is not in the vocabulary`);
      return id;
    };
    this.bosToken = tokenContent(tokenizerConfig["bos_token"]);
    this.eosToken = tokenContent(tokenizerConfig["eos_token"]);
    this.padToken = tokenContent(tokenizerConfig["pad_token"]);
    this.bosTokenId = idOf(this.bosToken, "bos_token");
    this.eosTokenId = idOf(this.eosToken, "eos_token");
    this.padTokenId = idOf(this.padToken, "pad_token");
    this.imStartId = this.hf.token_to_id("<|im_start|>") ?? null;
    this.imEndId = this.hf.token_to_id("<|im_end|>") ?? null;
    this.specialTokenIds = new Set([...this.hf.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));

    const source = chatTemplate ?? pickChatTemplate(tokenizerConfig["chat_template"]);
    try {
      this.template = source === null ? null : new Template(source);
    } catch (e) {
      throw new TokenizerError(`chat template does not parse: ${(e as Error).message}`);
    }
  }

  /** Load tokenizer.json, tokenizer_config.json and (if present) chat_template.jinja from `dir`. */
  static async load(dir: string): Promise<Tokenizer> {
    const tokenizerJson = await readJson(join(dir, "tokenizer.json"));
    const configPath = join(dir, "tokenizer_config.json");
    const tokenizerConfig = (await fileExists(configPath)) ? await readJson(configPath) : {};
    // Newer transformers save the template as its own file, which then takes precedence.
    const jinjaPath = join(dir, "chat_template.jinja");
    const chatTemplate = (await fileExists(jinjaPath)) ? await readFile(jinjaPath, "utf8") : null;
    return new Tokenizer(tokenizerJson, tokenizerConfig, chatTemplate);
  }

  /**
   * Token ids of `text`. Special-token strings in the text become their ids. With
   * addSpecialTokens (default false) the tokenizer's post-processor adds e.g. BOS; chat
   * templates already contain those, hence the default.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new TypeError("Tokenizer.encode: text must be a string");
    const { ids } = this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false });
    for (const id of ids) {
      if (id === undefined || id === null) {
        throw new TokenizerError(`Tokenizer.encode: text has characters this tokenizer cannot represent (no unk token)`);
      }
    }
    return ids;
  }

  /** Text of `ids`. Ids outside the vocabulary are a RangeError (mask them before sampling). */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const list = Array.from(ids);
    if (list.length === 0) return "";
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
        throw new RangeError(`Tokenizer.decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    return this.hf.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Render the tokenizer's chat template (tokenizer_config.json "chat_template"). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.template === null) throw new TokenizerError("this tokenizer has no chat_template");
    try {
      return this.template.render({
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: this.bosToken ?? "",
        eos_token: this.eosToken ?? "",
        pad_token: this.padToken ?? "",
        ...(opts.variables ?? {}),
      });
    } catch (e) {
      throw new TokenizerError(`chat template failed to render: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fitting a byte-level BPE tokenizer (GPT-2 / Qwen2 style)

/** Added tokens of fitted tokenizers, in id order after the BPE vocabulary. */
export const SPECIAL_TOKENS = [
  { content: "<|endoftext|>", special: true },
  { content: "<|im_start|>", special: true },
  { content: "<|im_end|>", special: true },
  // Reasoning markup: atomic tokens, but kept on decode (special: false), as in Qwen3.
  { content: "<think>", special: false },
  { content: "</think>", special: false },
  { content: "<answer>", special: false },
  { content: "</answer>", special: false },
] as const;

/**
 * Qwen2's pre-tokenizer split: contractions, letter runs (with one leading non-letter), single
 * digits (so numbers tokenize digit by digit, which helps arithmetic), punctuation runs, newlines,
 * whitespace. Oniguruma syntax, as tokenizer.json stores it; the library translates it.
 */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** ChatML, as Qwen2.5/Qwen3 render it (without tool calls or a default system prompt). */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** GPT-2's reversible map from the 256 byte values to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const out = new Array<string>(256);
  const isPrintable = new Set(printable);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCharCode(isPrintable.has(b) ? b : 256 + extra++);
  }
  return out;
}

const BYTE_LEVEL = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
const PRE_TOKENIZER = {
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: "Isolated", invert: false },
    BYTE_LEVEL,
  ],
};

export interface FitTokenizerOptions {
  /** Total vocabulary: 256 bytes + merges + the special tokens. Fewer if merges run out. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** tokenizer_config.json model_max_length (default 4096). */
  modelMaxLength?: number;
  /** Phrases kept whole as added (non-special) tokens after the special ones, e.g. " is true":
   * a look-up then reads the token right after the key ("foam" + " is true"), which an
   * induction head does at once, instead of two tokens on. */
  phrases?: readonly string[];
}

export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizer: Json;
  /** tokenizer_config.json */
  config: Json;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Pair key for symbol ids below 2^20 (exact in a double). */
const PAIR_SHIFT = 1 << 20;

/**
 * Learn a byte-level BPE from `corpus`: pre-tokenize exactly as the saved tokenizer will (the
 * library's own pre-tokenizer is used), count words, then repeatedly merge the most frequent
 * adjacent pair (ties: lexicographically smallest pair, for determinism). Special tokens are
 * split out of the corpus first, so they never take part in merges.
 */
export function fitTokenizer(corpus: string[], opts: FitTokenizerOptions): TokenizerFiles {
  const phrases = opts.phrases ?? [];
  phrases.forEach((ph, i) => {
    if (typeof ph !== "string" || ph === "" || SPECIAL_TOKENS.some((t) => t.content === ph) || phrases.indexOf(ph) !== i)
      throw new RangeError(`fitTokenizer: bad phrase ${JSON.stringify(ph)} (empty, special or repeated)`);
  });
  const addedTokens = [...SPECIAL_TOKENS, ...phrases.map((content) => ({ content, special: false }))];
  const numAdded = addedTokens.length;
  const { vocabSize } = opts;
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + numAdded || vocabSize >= PAIR_SHIFT) {
    throw new RangeError(`fitTokenizer: vocabSize must be an integer in [${256 + numAdded}, ${PAIR_SHIFT}), got ${vocabSize}`);
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new RangeError(`fitTokenizer: minFrequency must be a positive integer, got ${minFrequency}`);
  }

  // Pre-tokenize with the library's pre-tokenizer so training and encoding split identically.
  const skeleton = new HFTokenizer(
    {
      model: { type: "BPE", vocab: {}, merges: [] },
      normalizer: null,
      pre_tokenizer: PRE_TOKENIZER,
      post_processor: null,
      decoder: null,
      added_tokens: [],
    },
    {},
  );
  const specialSplit = new RegExp(addedTokens.map((t) => escapeRegExp(t.content)).join("|"), "g");
  const wordCounts = new Map<string, number>();
  for (const text of corpus) {
    if (typeof text !== "string") throw new TypeError("fitTokenizer: corpus must be an array of strings");
    for (const segment of text.split(specialSplit)) {
      if (segment === "") continue;
      for (const w of skeleton.pre_tokenizer!.pre_tokenize(segment)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }

  // Symbols: ids 0..255 are the byte alphabet, in byte order.
  const tokens: string[] = bytesToUnicode();
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const words = [...wordCounts].map(([w, count]) => ({ syms: Array.from(w, (ch) => idOf.get(ch)!), count }));

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addWord = (wi: number, sign: 1 | -1) => {
    const { syms, count } = words[wi]!;
    for (let i = 0; i + 1 < syms.length; i++) {
      const key = syms[i]! * PAIR_SHIFT + syms[i + 1]!;
      const c = (pairCount.get(key) ?? 0) + sign * count;
      if (c === 0) pairCount.delete(key);
      else pairCount.set(key, c);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(wi);
      } else {
        pairWords.get(key)?.delete(wi);
      }
    }
  };
  words.forEach((_, wi) => addWord(wi, 1));

  const merges: string[] = [];
  const targetBpe = vocabSize - numAdded;
  while (tokens.length < targetBpe) {
    let bestKey = -1;
    let bestCount = 0;
    for (const [key, count] of pairCount) {
      if (count > bestCount || (count === bestCount && pairLess(key, bestKey, tokens))) {
        bestKey = key;
        bestCount = count;
      }
    }
    if (bestKey < 0 || bestCount < minFrequency) break;
    const a = Math.floor(bestKey / PAIR_SHIFT);
    const b = bestKey % PAIR_SHIFT;
    const merged = tokens[a]! + tokens[b]!;
    let c = idOf.get(merged);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(merged);
      idOf.set(merged, c);
    }
    merges.push(`${tokens[a]} ${tokens[b]}`);
    for (const wi of [...(pairWords.get(bestKey) ?? [])]) {
      addWord(wi, -1);
      const syms = words[wi]!.syms;
      const next: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          next.push(c);
          i++;
        } else {
          next.push(syms[i]!);
        }
      }
      words[wi]!.syms = next;
      addWord(wi, 1);
    }
    pairWords.delete(bestKey);
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const added = addedTokens.map((t, i) => ({
    id: tokens.length + i,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));

  const tokenizer: Json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    // No normalizer: NFC (Qwen's choice) would break decode(encode(s)) == s on decomposed text.
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: BYTE_LEVEL,
    decoder: BYTE_LEVEL,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const addedTokensDecoder: Record<string, Json> = {};
  for (const { id, ...rest } of added) addedTokensDecoder[String(id)] = rest;
  const config: Json = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ["<|im_start|>", "<|im_end|>"],
    bos_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    errors: "replace",
    model_max_length: opts.modelMaxLength ?? 4096,
    pad_token: "<|endoftext|>",
    split_special_tokens: false,
    tokenizer_class: "Qwen2Tokenizer",
    unk_token: null,
  };
  return { tokenizer, config };
}

/** Is pair `x` lexicographically before pair `y` (by token strings)? `y < 0` means none yet. */
function pairLess(x: number, y: number, tokens: string[]): boolean {
  if (y < 0) return true;
  const xa = tokens[Math.floor(x / PAIR_SHIFT)]!;
  const ya = tokens[Math.floor(y / PAIR_SHIFT)]!;
  if (xa !== ya) return xa < ya;
  return tokens[x % PAIR_SHIFT]! < tokens[y % PAIR_SHIFT]!;
}

/** Write tokenizer.json and tokenizer_config.json into `dir` (atomically, each). */
export async function saveTokenizerFiles(dir: string, files: TokenizerFiles): Promise<void> {
  await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizer, null, 2) + "\n");
  await writeFileAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(files.config, null, 2) + "\n");
}
