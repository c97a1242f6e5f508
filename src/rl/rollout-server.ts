// A client for one OpenAI-compatible inference server (vLLM, SGLang or `anvil serve`), with
// the calls a trainer needs: the served model, a tokenizer probe, completions with per-token
// log-probs on token-id prompts, and weight or LoRA adapter reloads.
//
// Token ids are never re-tokenized from text. On OpenAI's /v1/completions they come from
// `choice.token_ids` (vLLM >= 0.10.2 and anvil serve with `return_token_ids`) or from
// log-prob tokens spelled "token_id:N" (vLLM's `return_tokens_as_token_ids`); both flags are
// sent. SGLang's OpenAI layer returns log-prob tokens as text only, so a server whose
// /v1/models says owned_by "sglang" is asked on its native /generate instead (input_ids in,
// meta_info.output_token_logprobs [[logprob, id, text], ...] and meta_info.weight_version out),
// as slime and verl do.
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { SampleOptions } from "../backend/backend.js";

export class RolloutServerError extends Error {
  override name = "RolloutServerError";
  constructor(
    readonly url: string,
    message: string,
    /** HTTP status; 0 when the server could not be reached or timed out. */
    readonly status = 0,
  ) {
    super(`${url}: ${message}`);
  }

  /** Worth trying again (elsewhere): unreachable, timed out, overloaded or crashed. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export interface ServerCompletion {
  tokens: number[];
  logprobs: number[];
  /** OpenAI's finish_reason: "stop" (EOS or a stop string), "length", ... */
  finishReason: string;
}

export interface CompletionResult {
  choices: ServerCompletion[];
  /** The weight version the server reports (X-Weight-Version or "weight_version"), or null. */
  version: string | null;
}

export interface CompletionRequest {
  model: string;
  prompt: number[];
  n: number;
  maxTokens: number;
  sampling: SampleOptions;
  seed: number;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export class RolloutServer {
  readonly url: string;
  private agent = new Agent({ keepAlive: true });
  /** "sglang": rollouts go to its native /generate (see the file comment). */
  kind: "openai" | "sglang" = "openai";

  constructor(
    url: string,
    /** Per-request timeout; a server that takes longer counts as failed. */
    readonly timeoutMs = 120_000,
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new RangeError(`rollout server "${url}" is not a URL (expected e.g. http://127.0.0.1:8000)`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new RangeError(`rollout server "${url}": only http:// and https:// are supported`);
    // Accept the base URL with or without OpenAI's /v1 suffix.
    this.url = u.href.replace(/\/+$/, "").replace(/\/v1$/, "");
  }

  /** Ids of the served models, with the context length when the server says it. */
  async models(): Promise<{ id: string; maxModelLen: number | null }[]> {
    const body = (await this.json("GET", "/v1/models")).body as { data?: { id?: unknown; max_model_len?: unknown; owned_by?: unknown }[] };
    if (!Array.isArray(body?.data)) throw new RolloutServerError(this.url, "/v1/models did not return {data: [...]}", 200);
    this.kind = body.data.some((m) => m.owned_by === "sglang") ? "sglang" : "openai";
    return body.data.map((m) => ({ id: String(m.id), maxModelLen: typeof m.max_model_len === "number" ? m.max_model_len : null }));
  }

  /** Token ids of `text` by the server's tokenizer, or null when it has no /tokenize. */
  async tokenize(model: string, text: string): Promise<number[] | null> {
    try {
      const { body } = await this.json("POST", "/tokenize", { model, prompt: text, add_special_tokens: false });
      const tokens = (body as { tokens?: unknown }).tokens;
      if (!Array.isArray(tokens)) throw new RolloutServerError(this.url, "/tokenize did not return {tokens: [...]}", 200);
      return tokens as number[];
    } catch (e) {
      if (e instanceof RolloutServerError && (e.status === 404 || e.status === 405)) return null;
      throw e;
    }
  }

  async health(): Promise<{ version: string | null }> {
    const r = await this.send("GET", "/health");
    if (r.status !== 200) throw this.errorOf(r);
    let version = headerVersion(r.headers);
    try {
      version ??= (JSON.parse(r.text) as { weight_version?: string }).weight_version ?? null;
    } catch {
      // vLLM and SGLang answer /health with an empty body
    }
    return { version };
  }

  async complete(req: CompletionRequest): Promise<CompletionResult> {
    const s = req.sampling;
    const greedy = s.greedy || s.temperature <= 0;
    if (this.kind === "sglang") {
      // One batch of n copies (SGLang's seed is per request, so no seed: n copies must differ).
      const { body, headers } = await this.json("POST", "/generate", {
        input_ids: Array.from({ length: req.n }, () => req.prompt),
        sampling_params: { temperature: greedy ? 0 : s.temperature, top_p: s.topP, top_k: s.topK > 0 ? s.topK : -1, min_p: s.minP, max_new_tokens: req.maxTokens },
        return_logprob: true,
      });
      return parseSglangGenerate(this.url, body, headerVersion(headers));
    }
    const { body, headers } = await this.json("POST", "/v1/completions", {
      model: req.model,
      prompt: req.prompt,
      n: req.n,
      max_tokens: req.maxTokens,
      temperature: greedy ? 0 : s.temperature,
      top_p: s.topP,
      top_k: s.topK > 0 ? s.topK : -1,
      min_p: s.minP,
      seed: req.seed,
      logprobs: 1,
      return_tokens_as_token_ids: true,
      return_token_ids: true,
    });
    return parseCompletion(this.url, body, headerVersion(headers));
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** SGLang's (and anvil serve's) full-weights reload. */
  async updateWeightsFromDisk(modelPath: string, version: string): Promise<void> {
    const { body } = await this.json("POST", "/update_weights_from_disk", { model_path: modelPath, weight_version: version }).catch((e: RolloutServerError) => {
      if (e.status !== 404) throw e;
      throw new RolloutServerError(
        this.url,
        "has no /update_weights_from_disk, so it cannot load the learner's full weights (vLLM loads only LoRA adapters over HTTP): train an adapter (--lora-r or --adapter) to use vLLM, or serve with SGLang or anvil serve",
        404,
      );
    });
    const b = body as { success?: boolean; message?: string };
    if (b.success === false) throw new RolloutServerError(this.url, `weight reload failed: ${b.message ?? "no message"}`, 400);
  }

  /**
   * vLLM's (and anvil serve's) LoRA load, replacing the adapter of that name in place. vLLM needs
   * VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora; it ignores weight_version, which
   * anvil serve reports back as its version.
   */
  async loadLoraAdapter(name: string, path: string, version?: string): Promise<void> {
    await this.json("POST", "/v1/load_lora_adapter", { lora_name: name, lora_path: path, load_inplace: true, ...(version === undefined ? {} : { weight_version: version }) }).catch((e: RolloutServerError) => {
      // A missing route is FastAPI's 404 {"detail": "Not Found"}; vLLM's own 404s (a bad path) say more.
      if (!(e.status === 405 || (e.status === 404 && /Not Found"?$/.test(e.message)))) throw e;
      throw new RolloutServerError(this.url, "has no /v1/load_lora_adapter, so it cannot load the learner's LoRA adapter: start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or use anvil serve", e.status);
    });
  }

  private async json(method: string, path: string, payload?: unknown): Promise<{ body: unknown; headers: IncomingHttpHeaders }> {
    const r = await this.send(method, path, payload);
    if (r.status < 200 || r.status >= 300) throw this.errorOf(r);
    try {
      return { body: r.text ? JSON.parse(r.text) : {}, headers: r.headers };
    } catch {
      // vLLM's load_lora_adapter answers 200 with plain text ("Success: LoRA adapter ... added")
      return { body: { message: r.text }, headers: r.headers };
    }
  }

  /** The error a non-2xx reply describes: OpenAI's {error: {message}}, vLLM's {message}, FastAPI's {detail}, or text. */
  private errorOf(r: Reply): RolloutServerError {
    let message = r.text.trim().slice(0, 500) || `HTTP ${r.status}`;
    try {
      const b = JSON.parse(r.text) as { error?: { message?: string } | string; message?: string; detail?: unknown };
      const m = typeof b.error === "object" ? b.error?.message : (b.error ?? b.message ?? (b.detail !== undefined ? JSON.stringify(b.detail) : undefined));
      if (m) message = m;
    } catch {
      // not JSON: keep the text
    }
    return new RolloutServerError(this.url, `HTTP ${r.status}: ${message}`, r.status);
  }

  private send(method: string, path: string, payload?: unknown): Promise<Reply> {
    const data = payload === undefined ? undefined : JSON.stringify(payload);
    const target = new URL(this.url + path);
    const request = target.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        target,
        { method, agent: target.protocol === "http:" ? this.agent : undefined, headers: data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", (e) => reject(new RolloutServerError(this.url, `${path}: ${e.message}`)));
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`timed out after ${this.timeoutMs} ms`)));
      req.on("error", (e) => reject(new RolloutServerError(this.url, `${path}: ${e.message}`)));
      req.end(data);
    });
  }
}

function headerVersion(h: IncomingHttpHeaders): string | null {
  const v = h["x-weight-version"];
  return typeof v === "string" ? v : null;
}

/** Parses a /v1/completions body into token ids and log-probs per choice (by index). */
export function parseCompletion(url: string, body: unknown, version: string | null): CompletionResult {
  const fail = (why: string) => new RolloutServerError(url, `unusable completion response: ${why}`, 200);
  const b = body as { choices?: unknown; weight_version?: unknown };
  if (!b || !Array.isArray(b.choices)) throw fail("no choices");
  const choices = (b.choices as Record<string, unknown>[])
    .slice()
    .sort((x, y) => Number(x.index ?? 0) - Number(y.index ?? 0))
    .map((c, i) => {
      const lp = c.logprobs as { tokens?: unknown[]; token_logprobs?: unknown[] } | null | undefined;
      if (!lp || !Array.isArray(lp.token_logprobs)) throw fail(`choice ${i} has no logprobs.token_logprobs (the request asked for logprobs)`);
      let tokens: number[];
      if (Array.isArray(c.token_ids)) tokens = c.token_ids as number[];
      else if (Array.isArray(lp.tokens) && lp.tokens.every((t) => typeof t === "string" && t.startsWith("token_id:"))) tokens = lp.tokens.map((t) => Number((t as string).slice(9)));
      else throw fail(`choice ${i} has no token ids: serve with vLLM (return_tokens_as_token_ids), SGLang (return_token_ids) or anvil serve`);
      const logprobs = lp.token_logprobs.map(Number);
      if (!tokens.every((t) => Number.isInteger(t) && t >= 0)) throw fail(`choice ${i} has token ids that are not non-negative integers`);
      if (logprobs.length !== tokens.length || !logprobs.every(Number.isFinite)) throw fail(`choice ${i} has ${tokens.length} tokens but ${logprobs.length} finite log-probs`);
      return { tokens, logprobs, finishReason: String(c.finish_reason ?? "stop") };
    });
  return { choices, version: version ?? (b.weight_version === undefined ? null : String(b.weight_version)) };
}

/** Parses SGLang's native /generate reply (one object, or a list for a batch). */
export function parseSglangGenerate(url: string, body: unknown, version: string | null): CompletionResult {
  const fail = (why: string) => new RolloutServerError(url, `unusable /generate response: ${why}`, 200);
  const items = (Array.isArray(body) ? body : [body]) as { meta_info?: { output_token_logprobs?: unknown; finish_reason?: { type?: unknown } | null; weight_version?: unknown } }[];
  const versions = new Set<string>();
  const choices = items.map((it, i) => {
    const meta = it?.meta_info;
    const lps = meta?.output_token_logprobs;
    if (!Array.isArray(lps)) throw fail(`item ${i} has no meta_info.output_token_logprobs (the request asked for return_logprob)`);
    const tokens = lps.map((e) => Number((e as unknown[])[1]));
    const logprobs = lps.map((e) => Number((e as unknown[])[0]));
    if (!tokens.every((t) => Number.isInteger(t) && t >= 0) || !logprobs.every(Number.isFinite)) throw fail(`item ${i} has malformed [logprob, token_id] pairs`);
    if (meta?.weight_version !== undefined && meta.weight_version !== null) versions.add(String(meta.weight_version));
    return { tokens, logprobs, finishReason: String(meta?.finish_reason?.type ?? "stop") };
  });
  if (versions.size > 1) throw fail(`one batch came from weight versions ${[...versions].join(", ")}`);
  return { choices, version: version ?? [...versions][0] ?? null };
}
