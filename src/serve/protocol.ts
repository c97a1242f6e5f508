// OpenAI-compatible request parsing and response shapes for /v1/completions and
// /v1/chat/completions (the subset vLLM and SGLang serve, with their RL extensions:
// `return_tokens_as_token_ids`, `return_token_ids`, `top_k`, `min_p`).
//
// Log-probs are those of the sampled tokens under the distribution actually sampled
// (temperature, then top-k/top-p/min-p renormalised; see model/generate.ts). Top alternatives
// are not computed: `top_logprobs` is null (completions) or [] (chat).
import type { SampleOptions } from "../backend/backend.js";
import type { ChatMessage, Tokenizer } from "../model/tokenizer.js";

/** A request error with its HTTP status, sent as OpenAI's {"error": {...}} body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status === 404 ? "NotFoundError" : status >= 500 ? "InternalServerError" : "invalid_request_error",
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: number } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}

export interface GenerationRequest {
  kind: "completion" | "chat";
  /** The model id the request named ("model"), or null when it named none. */
  model: string | null;
  /** One entry per prompt (completions accept a batch of prompts; chat has one). */
  prompts: number[][];
  n: number;
  maxTokens: number | null;
  sampling: SampleOptions;
  seed: number | null;
  stop: string[];
  /** Whether to return per-token log-probs. */
  logprobs: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's flag: log-prob tokens as "token_id:N" instead of text. */
  tokensAsIds: boolean;
  /** vLLM/SGLang's flag: `token_ids` (and `prompt_token_ids`) on each choice. */
  returnTokenIds: boolean;
}

type Body = Record<string, unknown>;

const bad = (message: string, param: string) => new ApiError(400, message, param);

function num(b: Body, key: string, def: number, min: number, max: number, int = false): number {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw bad(`${key} must be ${int ? "an integer" : "a number"}, got ${JSON.stringify(v)}`, key);
  if (v < min || v > max) throw bad(`${key} must be in [${min}, ${max}], got ${v}`, key);
  return v;
}

function bool(b: Body, key: string): boolean {
  const v = b[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw bad(`${key} must be true or false, got ${JSON.stringify(v)}`, key);
  return v;
}

function tokenIds(v: unknown[], vocab: number, param: string): number[] {
  if (!v.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < vocab)) throw bad(`${param}: token ids must be integers in [0, ${vocab})`, param);
  return v as number[];
}

/** The prompts of a completions request: a string, token ids, or a list of either. */
function completionPrompts(p: unknown, tok: Tokenizer): number[][] {
  const one = (x: unknown): number[] | null => {
    if (typeof x === "string") return tok.encode(x);
    if (Array.isArray(x) && x.length && typeof x[0] === "number") return tokenIds(x, tok.vocabSize, "prompt");
    return null;
  };
  const single = one(p);
  const list = single ? [single] : Array.isArray(p) && p.length ? p.map(one) : [null];
  if (list.some((x) => x === null)) throw bad("prompt must be a string, a list of token ids, or a non-empty list of those", "prompt");
  if (list.some((x) => x!.length === 0)) throw bad("prompt is empty", "prompt");
  return list as number[][];
}

function chatPrompt(messages: unknown, tok: Tokenizer): number[] {
  if (!Array.isArray(messages) || messages.length === 0) throw bad("messages must be a non-empty list", "messages");
  const parsed: ChatMessage[] = messages.map((m, i) => {
    const msg = m as Body;
    if (!msg || typeof msg !== "object" || typeof msg.role !== "string") throw bad(`messages[${i}] must be an object with a string role`, "messages");
    let content = msg.content;
    // The list form: [{type: "text", text}, ...]; only text parts exist for this model.
    if (Array.isArray(content)) content = content.map((part: Body) => (part && part.type === "text" && typeof part.text === "string" ? part.text : badPart(i))).join("");
    if (typeof content !== "string") throw bad(`messages[${i}].content must be a string or a list of text parts`, "messages");
    return { role: msg.role, content };
  });
  if (!tok.hasChatTemplate) throw bad("the served model's tokenizer has no chat template: use /v1/completions", "messages");
  return tok.encode(tok.applyChatTemplate(parsed, { addGenerationPrompt: true }));
}

function badPart(i: number): never {
  throw bad(`messages[${i}].content: only {"type": "text", "text": ...} parts are supported`, "messages");
}

/** Parses and validates a completions or chat request body against the served model. */
export function parseGenerationRequest(kind: "completion" | "chat", raw: unknown, served: { names: readonly string[]; tokenizer: Tokenizer; maxModelLen: number }): GenerationRequest {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw bad("the request body must be a JSON object", "body");
  const b = raw as Body;
  const model = b.model === undefined || b.model === null ? null : b.model;
  if (model !== null && (typeof model !== "string" || !served.names.includes(model))) throw new ApiError(404, `The model \`${String(b.model)}\` does not exist.`, "model");
  for (const k of ["presence_penalty", "frequency_penalty"]) if (num(b, k, 0, -2, 2) !== 0) throw bad(`${k} is not supported (only 0)`, k);
  if (b.echo === true) throw bad("echo is not supported", "echo");
  const prompts = kind === "chat" ? [chatPrompt(b.messages, served.tokenizer)] : completionPrompts(b.prompt, served.tokenizer);
  const maxKey = kind === "chat" && b.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
  const maxTokens = b[maxKey] === undefined || b[maxKey] === null ? (kind === "chat" ? null : 16) : num(b, maxKey, 16, 1, served.maxModelLen, true);
  const temperature = num(b, "temperature", 1, 0, 100);
  const topK = num(b, "top_k", 0, -1, served.tokenizer.vocabSize, true);
  const sampling: SampleOptions = {
    temperature,
    topK: topK < 0 ? 0 : topK,
    topP: num(b, "top_p", 1, Number.MIN_VALUE, 1),
    minP: num(b, "min_p", 0, 0, 1),
    greedy: temperature === 0,
  };
  let logprobs: boolean;
  if (kind === "chat") {
    logprobs = bool(b, "logprobs");
    if (num(b, "top_logprobs", 0, 0, 20, true) > 0) throw bad("top_logprobs > 0 is not supported: only the sampled tokens' log-probs are returned", "top_logprobs");
  } else {
    logprobs = b.logprobs !== undefined && b.logprobs !== null && num(b, "logprobs", 0, 0, 20, true) >= 0;
  }
  const stop = b.stop === undefined || b.stop === null ? [] : typeof b.stop === "string" ? [b.stop] : b.stop;
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string" && s.length > 0)) throw bad("stop must be a non-empty string or a list of them", "stop");
  const streamOptions = (b.stream_options ?? {}) as Body;
  return {
    kind,
    model: model as string | null,
    prompts,
    n: num(b, "n", 1, 1, 256, true),
    maxTokens,
    sampling,
    seed: b.seed === undefined || b.seed === null ? null : num(b, "seed", 0, -(2 ** 63), 2 ** 64, true),
    stop,
    logprobs,
    stream: bool(b, "stream"),
    includeUsage: streamOptions.include_usage === true,
    tokensAsIds: bool(b, "return_tokens_as_token_ids"),
    returnTokenIds: bool(b, "return_token_ids"),
  };
}

/** The text of one token for a log-prob entry ("token_id:N" with return_tokens_as_token_ids). */
export function tokenLabel(tok: Tokenizer, id: number, asIds: boolean): string {
  return asIds ? `token_id:${id}` : tok.decode([id]);
}

/** Completions' log-probs object: {tokens, token_logprobs, top_logprobs, text_offset}. */
export function completionLogprobs(tok: Tokenizer, ids: number[], lps: number[], asIds: boolean, offset = 0) {
  const tokens = ids.map((id) => tokenLabel(tok, id, asIds));
  const textOffset: number[] = [];
  let at = offset;
  for (const t of tokens) {
    textOffset.push(at);
    at += asIds ? 0 : t.length;
  }
  return { tokens, token_logprobs: lps, top_logprobs: null, text_offset: textOffset };
}

/** Chat's log-probs object: {content: [{token, logprob, bytes, top_logprobs}]}. */
export function chatLogprobs(tok: Tokenizer, ids: number[], lps: number[], asIds: boolean) {
  return {
    content: ids.map((id, i) => {
      const token = tokenLabel(tok, id, asIds);
      return { token, logprob: lps[i], bytes: [...Buffer.from(token, "utf8")], top_logprobs: [] };
    }),
  };
}

/** OpenAI finish reasons: EOS and stop strings are both "stop". */
export function openAiFinish(reason: string): string {
  return reason === "length" ? "length" : reason === "abort" ? "abort" : "stop";
}
