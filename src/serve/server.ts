// `anvil serve`: an OpenAI-compatible HTTP server (node:http) over a ServeEngine.
//
//   GET  /health                      {"status": "ok", "weight_version", queue and batch figures}
//   GET  /v1/models                   the served model (id, max_model_len, weight_version)
//   POST /v1/completions              prompt: string | token ids | a list of either
//   POST /v1/chat/completions         messages, rendered with the tokenizer's chat template
//   POST /tokenize                    vLLM's shape: {prompt} -> {tokens, count, max_model_len}
//   POST /update_weights_from_disk    SGLang's shape: {model_path, weight_version?}
//   POST /v1/load_lora_adapter        vLLM's shape: {lora_name, lora_path, load_inplace?} (+ weight_version)
//   POST /v1/unload_lora_adapter      vLLM's shape: {lora_name} (+ weight_version)
//
// Models: the base under its name, and the loaded LoRA adapter (at most one) under its
// lora_name, listed in /v1/models with the base as parent, as vLLM lists them. A request naming
// the adapter runs base + adapter, one naming the base runs the base alone (vLLM's rule), and
// one naming no model gets the adapter when one is loaded (the served model is base + adapter).
//
// Every response carries the weight version in the X-Weight-Version header; generation
// responses also carry it in the body ("weight_version"). Errors are OpenAI's JSON shape with
// a 4xx status; a client that disconnects has its rows dropped at the next decode step.
import { randomBytes, randomInt } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { resolve } from "node:path";
import type { Tokenizer } from "../model/tokenizer.js";
import { ReloadError, type ServeChoice, type ServeEngine, type ServeResult } from "./engine.js";
import { ApiError, chatLogprobs, completionLogprobs, openAiFinish, parseGenerationRequest, type GenerationRequest } from "./protocol.js";

export const WEIGHT_VERSION_HEADER = "x-weight-version";
const MAX_BODY_BYTES = 32 << 20;

export interface ServeOptions {
  /** The model id clients pass as "model" (default: the model directory's name). */
  name: string;
  /** The model directory, reported as "root" in /v1/models. */
  root: string;
}

export function createServeServer(engine: ServeEngine, opts: ServeOptions): Server {
  const tok = engine.policy.tokenizer;
  const served = {
    tokenizer: tok,
    maxModelLen: engine.policy.model.config.maxPositionEmbeddings,
    get names() {
      return engine.lora ? [opts.name, engine.lora.name] : [opts.name];
    },
  };
  return createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      const err = e instanceof ApiError ? e : new ApiError(500, e.message);
      if (!res.headersSent) sendJson(res, err.status, err.body(), engine.version);
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    const route = ROUTES[path];
    if (!route) throw new ApiError(404, `no route ${path}`);
    if (req.method !== route) throw new ApiError(405, `${path} takes ${route}, not ${req.method}`);
    switch (path) {
      case "/health":
        const st = engine.stats;
        return sendJson(res, 200, { status: "ok", weight_version: engine.version, queued: engine.queued, running_rows: st.runningRows, aborted: st.aborted, completed: st.completed, batches: st.batches }, engine.version);
      case "/v1/models":
        const entry = (id: string, root: string, parent: string | null) => ({ id, object: "model", created: 0, owned_by: "anvil", root, parent, max_model_len: served.maxModelLen, weight_version: engine.version });
        const data = [entry(opts.name, opts.root, null), ...(engine.lora ? [entry(engine.lora.name, engine.lora.path, opts.name)] : [])];
        return sendJson(res, 200, { object: "list", data }, engine.version);
      case "/tokenize": {
        const b = (await readBody(req)) as { prompt?: unknown; add_special_tokens?: unknown };
        if (typeof b.prompt !== "string") throw new ApiError(400, "prompt must be a string", "prompt");
        const tokens = tok.encode(b.prompt, { addSpecialTokens: b.add_special_tokens === true });
        return sendJson(res, 200, { count: tokens.length, max_model_len: served.maxModelLen, tokens }, engine.version);
      }
      case "/update_weights_from_disk": {
        const b = (await readBody(req)) as { model_path?: unknown; weight_version?: unknown };
        if (typeof b.model_path !== "string" || !b.model_path) throw new ApiError(400, "model_path must be a directory path", "model_path");
        const version = b.weight_version === undefined || b.weight_version === null ? undefined : String(b.weight_version);
        try {
          const v = await engine.reload(resolve(b.model_path), version);
          return sendJson(res, 200, { success: true, message: `Succeeded to update model weights (weight_version ${v}).`, num_paused_requests: 0, weight_version: v }, engine.version);
        } catch (e) {
          if (!(e instanceof ReloadError)) throw e;
          return sendJson(res, 400, { success: false, message: e.message, num_paused_requests: 0 }, engine.version);
        }
      }
      case "/v1/load_lora_adapter": {
        // vLLM's request; weight_version is Anvil's addition (vLLM ignores it), as on SGLang's reload.
        const b = (await readBody(req)) as { lora_name?: unknown; lora_path?: unknown; load_inplace?: unknown; weight_version?: unknown };
        for (const k of ["lora_name", "lora_path"] as const) if (typeof b[k] !== "string" || !b[k]) throw new ApiError(400, `${k} must be a non-empty string`, k);
        const name = b.lora_name as string;
        if (name === opts.name) throw new ApiError(400, `lora_name must differ from the base model's id "${opts.name}"`, "lora_name");
        if (engine.lora?.name === name && b.load_inplace !== true)
          throw new ApiError(400, `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`, "lora_name");
        const version = b.weight_version === undefined || b.weight_version === null ? undefined : String(b.weight_version);
        const loaded = await engine.loadAdapter(name, resolve(b.lora_path as string), version).catch((e: Error) => {
          throw e instanceof ReloadError ? new ApiError(400, e.message, "lora_path") : e;
        });
        // vLLM answers with this plain text; the version is in X-Weight-Version.
        return sendText(res, `Success: LoRA adapter '${name}' added successfully.`, loaded);
      }
      case "/v1/unload_lora_adapter": {
        const b = (await readBody(req)) as { lora_name?: unknown; weight_version?: unknown };
        if (typeof b.lora_name !== "string" || !b.lora_name) throw new ApiError(400, "lora_name must be a non-empty string", "lora_name");
        if (engine.lora?.name !== b.lora_name) throw new ApiError(404, `The lora adapter '${b.lora_name}' cannot be found.`, "lora_name");
        const unloaded = await engine.unloadAdapter(b.weight_version === undefined || b.weight_version === null ? undefined : String(b.weight_version));
        return sendText(res, `Success: LoRA adapter '${b.lora_name}' removed successfully.`, unloaded);
      }
      default: {
        const kind = path === "/v1/chat/completions" ? "chat" : "completion";
        const request = parseGenerationRequest(kind, await readBody(req), served);
        return generateResponse(request, res);
      }
    }
  }

  async function generateResponse(r: GenerationRequest, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableEnded) abort.abort();
    });
    const id = `${r.kind === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    const object = r.kind === "chat" ? "chat.completion" : "text_completion";
    const seed = r.seed === null ? randomInt(2 ** 32) : Number(BigInt.asUintN(32, BigInt(r.seed)));
    const jobs = r.prompts.map((prompt) => {
      const room = served.maxModelLen - prompt.length;
      const maxTokens = r.maxTokens ?? room;
      if (maxTokens > room || room < 1)
        throw new ApiError(400, `This model's maximum context length is ${served.maxModelLen} tokens. However, you requested ${prompt.length + Math.max(1, maxTokens)} tokens (${prompt.length} in the messages, ${maxTokens} in the completion).`, "max_tokens");
      return { prompt, n: r.n, maxTokens, sampling: r.sampling, adapter: r.model !== opts.name, seed, stop: r.stop, signal: abort.signal };
    });
    const stream = r.stream ? new SseStream(res, r, tok, engine.policy.eosId, { id, created, object: `${object}.chunk`, model: r.model ?? opts.name }) : null;
    const results = await Promise.all(
      jobs.map((job, p) =>
        engine.submit({
          ...job,
          onStart: (version) => stream?.open(version),
          onToken: stream ? (c, token, lp) => stream.token(p * r.n + c, token, lp) : undefined,
        }),
      ),
    ).catch((e: Error) => {
      if (abort.signal.aborted) return null; // the client is gone: nothing to answer
      throw e;
    });
    if (!results) return;
    const version = results[0].version;
    const choices = results.flatMap((x: ServeResult) => x.choices);
    const promptTokens = r.prompts.reduce((a, p) => a + p.length, 0);
    const usage = { prompt_tokens: promptTokens, completion_tokens: choices.reduce((a, c) => a + c.tokens.length, 0), total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (stream) return stream.finish(choices, r.includeUsage ? usage : null);
    const out = choices.map((c: ServeChoice, i: number) => {
      const extra = r.returnTokenIds ? { token_ids: c.tokens, prompt_token_ids: r.prompts[Math.floor(i / r.n)] } : {};
      if (r.kind === "chat") {
        return { index: i, message: { role: "assistant", content: c.text }, logprobs: r.logprobs ? chatLogprobs(tok, c.tokens, c.logprobs, r.tokensAsIds) : null, finish_reason: openAiFinish(c.finishReason), ...extra };
      }
      return { index: i, text: c.text, logprobs: r.logprobs ? completionLogprobs(tok, c.tokens, c.logprobs, r.tokensAsIds) : null, finish_reason: openAiFinish(c.finishReason), ...extra };
    });
    sendJson(res, 200, { id, object, created, model: r.model ?? opts.name, choices: out, usage, weight_version: version }, version);
  }
}

const ROUTES: Record<string, "GET" | "POST"> = {
  "/health": "GET",
  "/v1/models": "GET",
  "/v1/completions": "POST",
  "/v1/chat/completions": "POST",
  "/tokenize": "POST",
  "/update_weights_from_disk": "POST",
  "/v1/load_lora_adapter": "POST",
  "/v1/unload_lora_adapter": "POST",
};

function sendJson(res: ServerResponse, status: number, body: unknown, version: string): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), [WEIGHT_VERSION_HEADER]: version });
  res.end(data);
}

function sendText(res: ServerResponse, text: string, version: string): void {
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), [WEIGHT_VERSION_HEADER]: version });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, `request body over ${MAX_BODY_BYTES >> 20} MB`, "body");
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text || "{}");
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, "body");
  }
}

/**
 * Server-sent events, one chunk per generated token. Text is sent once it is final: a token
 * that ends inside a UTF-8 character, or text that could be the start of a stop string, is
 * held back until the next token settles it.
 */
class SseStream {
  private sent: string[] = [];
  private tokens: number[][] = [];

  constructor(
    private res: ServerResponse,
    private r: GenerationRequest,
    private tok: Tokenizer,
    private eosId: number,
    private meta: { id: string; created: number; object: string; model: string },
  ) {}

  open(version: string): void {
    if (this.res.headersSent) return;
    this.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", [WEIGHT_VERSION_HEADER]: version });
    // Chat streams open each choice with the assistant role, as OpenAI's do.
    if (this.r.kind === "chat")
      for (let i = 0; i < this.r.n * this.r.prompts.length; i++) this.write({ ...this.meta, choices: [{ index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
  }

  token(index: number, id: number, lp: number): void {
    const toks = (this.tokens[index] ??= []);
    toks.push(id);
    let text = this.tok.decode(toks[toks.length - 1] === this.eosId ? toks.slice(0, -1) : toks);
    const stopAt = Math.min(...this.r.stop.map((s) => (text.includes(s) ? text.indexOf(s) : Infinity)));
    if (stopAt < Infinity) text = text.slice(0, stopAt);
    else text = text.slice(0, text.length - this.heldBack(text));
    if (text.endsWith("\uFFFD")) text = text.slice(0, -1);
    const sent = this.sent[index] ?? "";
    const delta = text.startsWith(sent) ? text.slice(sent.length) : "";
    if (delta) this.sent[index] = sent + delta;
    this.chunk(index, delta, [id], [lp], null);
  }

  /** Length of the longest suffix of `text` that starts some stop string. */
  private heldBack(text: string): number {
    let hold = 0;
    for (const s of this.r.stop) for (let k = Math.min(s.length - 1, text.length); k > hold; k--) if (text.endsWith(s.slice(0, k))) hold = k;
    return hold;
  }

  finish(choices: ServeChoice[], usage: object | null): void {
    choices.forEach((c, i) => {
      const sent = this.sent[i] ?? "";
      this.chunk(i, c.text.startsWith(sent) ? c.text.slice(sent.length) : "", [], [], openAiFinish(c.finishReason));
    });
    if (usage) this.write({ ...this.meta, choices: [], usage });
    this.res.end("data: [DONE]\n\n");
  }

  private chunk(index: number, text: string, ids: number[], lps: number[], finish: string | null): void {
    const { r, tok } = this;
    const logprobs = r.logprobs && ids.length ? (r.kind === "chat" ? chatLogprobs(tok, ids, lps, r.tokensAsIds) : completionLogprobs(tok, ids, lps, r.tokensAsIds)) : null;
    const choice =
      r.kind === "chat"
        ? { index, delta: text || finish === null ? { content: text } : {}, logprobs, finish_reason: finish }
        : { index, text, logprobs, finish_reason: finish, ...(r.returnTokenIds && ids.length ? { token_ids: ids } : {}) };
    this.write({ ...this.meta, choices: [choice] });
  }

  private write(obj: object): void {
    if (!this.res.writableEnded) this.res.write(`data: ${JSON.stringify(obj)}\n\n`);
  }
}
