// anvil serve on the tiny model, in process: OpenAI shapes, exact agreement with the in-process
// generator (same seed, same tokens and log-probs), batching independence, stop strings,
// streaming, errors, a disconnecting client, a weight reload that changes the log-probs, and a
// LoRA adapter loaded in place (base + adapter log-probs for requests naming it).
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../src/backend/cpu.js";
import { initModel } from "../src/model/init.js";
import { LoraAdapter, peftModulePath, projectionShape, type LoraConfig } from "../src/model/lora.js";
import { loadAdapter, saveAdapter } from "../src/model/peft.js";
import type { ModelConfig } from "../src/model/types.js";
import { mulberry32 } from "../src/util/rng.js";
import { Policy } from "../src/rl/policy.js";
import { ServeEngine } from "../src/serve/engine.js";
import { createServeServer } from "../src/serve/server.js";
import { taskCorpus } from "../src/tasks/index.js";
import type { Server } from "node:http";

let be: CpuBackend;
let policyA: Policy; // the served model, as loaded by the test (a separate copy)
let policyB: Policy;
let server: Server;
let engine: ServeEngine;
let base: string;
let work: string;
const PROMPT = "If rain then wind. rain is true. Is wind true or false?";

async function call(path: string, body?: unknown, method = body === undefined ? "GET" : "POST") {
  const res = await fetch(base + path, { method, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json" } });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // SSE or empty
  }
  return { status: res.status, version: res.headers.get("x-weight-version"), json, text };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-serve-"));
  const corpus = taskCorpus("graphli", 200);
  await initModel({ preset: "tiny", corpus, out: join(work, "a"), seed: 1 });
  await initModel({ preset: "tiny", corpus, out: join(work, "b"), seed: 2 });
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: join(work, "other"), seed: 1 });
  be = new CpuBackend({ threads: 1 });
  policyA = await Policy.load(join(work, "a"), be);
  policyB = await Policy.load(join(work, "b"), be);
  // A 50 ms batching window: concurrent test requests reliably share a batch on a loaded machine.
  engine = new ServeEngine(await Policy.load(join(work, "a"), be), 64, "0", 50);
  server = createServeServer(engine, { name: "tiny", root: join(work, "a") });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server?.closeAllConnections();
  server?.close();
});

describe("anvil serve", () => {
  it("answers completions with the in-process generator's tokens and log-probs for the same seed", async () => {
    const prompt = policyA.encodePrompt(PROMPT);
    const r = await call("/v1/completions", { model: "tiny", prompt, n: 3, max_tokens: 12, seed: 42, temperature: 0.9, top_k: 50, logprobs: 1, return_token_ids: true });
    expect(r.status).toBe(200);
    expect(r.version).toBe("0");
    expect(r.json.object).toBe("text_completion");
    expect(r.json.weight_version).toBe("0");
    const local = await policyA.generate([PROMPT, PROMPT, PROMPT], { maxNewTokens: 12, sampling: { temperature: 0.9, topK: 50, topP: 1, minP: 0 }, seed: 42 });
    r.json.choices.forEach((c: any, i: number) => {
      expect(c.index).toBe(i);
      expect(c.token_ids).toEqual(local[i].tokens);
      expect(c.logprobs.token_logprobs).toEqual(local[i].logprobs.map((x) => Math.fround(x)));
      expect(c.logprobs.tokens).toHaveLength(c.token_ids.length);
      expect(c.text).toBe(local[i].text);
    });
    expect(new Set(r.json.choices.map((c: any) => c.text)).size).toBeGreaterThan(1); // n draws differ
    expect(r.json.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: local.reduce((a, g) => a + g.tokens.length, 0), total_tokens: prompt.length + local.reduce((a, g) => a + g.tokens.length, 0) });
  });

  it("gives every request of a shared batch its own seed and max_tokens", async () => {
    const body = (seed: number, max: number) => ({ prompt: PROMPT, max_tokens: max, seed, return_tokens_as_token_ids: true, logprobs: 0 });
    const solo = await call("/v1/completions", body(7, 9));
    const batchesBefore = engine.stats.batches;
    const [a, b] = await Promise.all([call("/v1/completions", body(7, 9)), call("/v1/completions", body(8, 3))]);
    expect(engine.stats.batches - batchesBefore).toBe(1); // decoded together
    expect(a.json.choices[0].logprobs.tokens).toEqual(solo.json.choices[0].logprobs.tokens);
    expect(a.json.choices[0].logprobs.tokens[0]).toMatch(/^token_id:\d+$/);
    expect(b.json.choices[0].logprobs.tokens.length).toBeLessThanOrEqual(3);
  });

  it("serves chat completions through the chat template", async () => {
    const r = await call("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: PROMPT }], max_tokens: 8, seed: 1, logprobs: true });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe("chat.completion");
    expect(r.json.usage.prompt_tokens).toBe(policyA.encodePrompt(PROMPT).length);
    const c = r.json.choices[0];
    expect(c.message.role).toBe("assistant");
    expect(c.logprobs.content.length).toBe(r.json.usage.completion_tokens);
    expect(Number.isFinite(c.logprobs.content[0].logprob)).toBe(true);
  });

  it("ends a completion at a stop string and leaves it out of the text", async () => {
    const full = await call("/v1/completions", { prompt: PROMPT, max_tokens: 24, temperature: 0 });
    const text: string = full.json.choices[0].text;
    const stop = text.slice(4, 7);
    expect(stop.length).toBe(3);
    const r = await call("/v1/completions", { prompt: PROMPT, max_tokens: 24, temperature: 0, stop: [stop] });
    expect(r.json.choices[0].text).toBe(text.slice(0, text.indexOf(stop)));
    expect(r.json.choices[0].finish_reason).toBe("stop");
  });

  it("streams server-sent events whose text adds up to the whole completion", async () => {
    const body = { prompt: PROMPT, max_tokens: 10, seed: 5, logprobs: 0, stream_options: { include_usage: true } };
    const whole = await call("/v1/completions", body);
    const r = await call("/v1/completions", { ...body, stream: true });
    const events = r.text.split("\n\n").filter(Boolean);
    expect(events[events.length - 1]).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, "")));
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices.map((c) => c.text).join("")).toBe(whole.json.choices[0].text);
    expect(choices.filter((c) => c.logprobs).flatMap((c) => c.logprobs.token_logprobs)).toEqual(whole.json.choices[0].logprobs.token_logprobs);
    expect(choices[choices.length - 1].finish_reason).toBe(whole.json.choices[0].finish_reason);
    expect(chunks[chunks.length - 1].usage.completion_tokens).toBe(whole.json.usage.completion_tokens);
    expect(r.version).toBe("0");
  });

  it("streams chat deltas: the assistant role first, then content adding up to the message", async () => {
    const body = { messages: [{ role: "user", content: PROMPT }], max_tokens: 8, seed: 2, n: 2 };
    const whole = await call("/v1/chat/completions", body);
    const r = await call("/v1/chat/completions", { ...body, stream: true });
    const chunks = r.text
      .split("\n\n")
      .filter((e) => e.startsWith("data: {"))
      .map((e) => JSON.parse(e.slice(6)));
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    for (const i of [0, 1]) {
      const mine = chunks.flatMap((c) => c.choices).filter((c) => c.index === i);
      expect(mine[0].delta).toEqual({ role: "assistant", content: "" });
      expect(mine.map((c) => c.delta.content ?? "").join("")).toBe(whole.json.choices[i].message.content);
    }
  });

  it("answers bad requests with OpenAI-style JSON errors and 4xx codes", async () => {
    const cases: [string, unknown, number, string | null][] = [
      ["/v1/completions", "{not json", 400, "body"],
      ["/v1/completions", { max_tokens: 4 }, 400, "prompt"],
      ["/v1/completions", { prompt: "x", temperature: -1 }, 400, "temperature"],
      ["/v1/completions", { prompt: "x", n: 0 }, 400, "n"],
      ["/v1/completions", { prompt: [1, 2, 1e9] }, 400, "prompt"],
      ["/v1/completions", { prompt: "x", max_tokens: 1e6 }, 400, "max_tokens"],
      ["/v1/completions", { prompt: "x", model: "gpt-4" }, 404, "model"],
      ["/v1/chat/completions", { messages: [] }, 400, "messages"],
      ["/v1/chat/completions", { messages: [{ role: "user", content: "x" }], top_logprobs: 3 }, 400, "top_logprobs"],
      ["/v1/load_lora_adapter", { lora_name: "a", lora_path: "/nowhere" }, 400, "lora_path"],
      ["/v1/load_lora_adapter", { lora_name: "a" }, 400, "lora_path"],
      ["/v1/load_lora_adapter", { lora_name: "tiny", lora_path: "/nowhere" }, 400, "lora_name"],
      ["/v1/nothing", {}, 404, null],
    ];
    for (const [path, body, status, param] of cases) {
      const r = await call(path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(status);
      expect(r.json.error.code).toBe(status);
      expect(r.json.error.param).toBe(param);
      expect(typeof r.json.error.message).toBe("string");
    }
    expect((await call("/v1/completions", undefined, "GET")).status).toBe(405);
  });

  it("frees the batch slot of a client that disconnects", async () => {
    const abortedBefore = engine.stats.aborted;
    await new Promise<void>((done, fail) => {
      const req = request(base + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.once("data", () => req.destroy()); // first token arrived: hang up
      });
      req.on("error", () => done()); // our own destroy
      req.on("close", () => done());
      req.end(JSON.stringify({ prompt: PROMPT, max_tokens: 1900, seed: 3, stream: true, min_p: 0 }));
      setTimeout(() => fail(new Error("no first token")), 20_000);
    });
    const t0 = Date.now();
    while (engine.stats.runningRows > 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    expect(engine.stats.runningRows).toBe(0);
    expect(engine.stats.aborted).toBe(abortedBefore + 1);
    const h = await call("/health");
    expect(h.json).toMatchObject({ status: "ok", running_rows: 0, queued: 0, aborted: abortedBefore + 1 });
  });

  it("reloads weights from disk: the version and the log-probs become the new model's", async () => {
    const prompt = policyA.encodePrompt(PROMPT);
    const req = { prompt, max_tokens: 8, seed: 11, logprobs: 0, return_token_ids: true };
    const before = (await call("/v1/completions", req)).json.choices[0];
    const [genA] = await policyA.generate([PROMPT], { maxNewTokens: 8, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 11 });
    const [genB] = await policyB.generate([PROMPT], { maxNewTokens: 8, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 11 });
    expect(before.logprobs.token_logprobs).toEqual(genA.logprobs.map(Math.fround));

    const bad = await call("/update_weights_from_disk", { model_path: join(work, "other") });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ success: false });
    expect(bad.json.message).toMatch(/tokenizer/);
    expect((await call("/update_weights_from_disk", {})).status).toBe(400);

    const ok = await call("/update_weights_from_disk", { model_path: join(work, "b"), weight_version: "5" });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ success: true, weight_version: "5" });
    const after = await call("/v1/completions", req);
    expect(after.version).toBe("5");
    expect(after.json.choices[0].token_ids).toEqual(genB.tokens);
    expect(after.json.choices[0].logprobs.token_logprobs).toEqual(genB.logprobs.map(Math.fround));
    expect(after.json.choices[0].logprobs.token_logprobs).not.toEqual(before.logprobs.token_logprobs);
    expect((await call("/v1/models")).json.data[0]).toMatchObject({ id: "tiny", weight_version: "5", max_model_len: 2048 });
  });

  it("loads a PEFT adapter in place: requests naming it get base + adapter log-probs, the base stays servable", async () => {
    // Runs after the weight reload above: the served base is model b, version 5.
    const cfg = policyB.model.config;
    const lora: LoraConfig = { r: 2, alpha: 4, targets: ["q", "v", "down"] };
    const adapterDir = await writeAdapter("adapter", cfg, lora, 3);
    const local = await loadAdapter(adapterDir, be, cfg);
    const sampling = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    const [baseGen] = await policyB.generate([PROMPT], { maxNewTokens: 8, sampling, seed: 11 });
    policyB.model.attachAdapter(local);
    const [loraGen] = await policyB.generate([PROMPT], { maxNewTokens: 8, sampling, seed: 11 });
    policyB.model.detachAdapter()?.dispose();
    expect(loraGen.logprobs).not.toEqual(baseGen.logprobs); // the adapter matters

    const ok = await call("/v1/load_lora_adapter", { lora_name: "pol", lora_path: adapterDir });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe("Success: LoRA adapter 'pol' added successfully."); // vLLM's answer
    expect(ok.version).toBe("6"); // bumped from 5
    expect((await call("/v1/models")).json.data).toMatchObject([
      { id: "tiny", parent: null },
      { id: "pol", root: adapterDir, parent: "tiny", weight_version: "6" },
    ]);
    const req = { prompt: policyB.encodePrompt(PROMPT), max_tokens: 8, seed: 11, logprobs: 0, return_token_ids: true };
    for (const [model, want] of [["pol", loraGen], [undefined, loraGen], ["tiny", baseGen]] as const) {
      const r = await call("/v1/completions", { ...req, model });
      expect(r.status, String(model)).toBe(200);
      expect(r.json.model).toBe(model ?? "tiny");
      expect(r.json.choices[0].token_ids, String(model)).toEqual(want.tokens);
      expect(r.json.choices[0].logprobs.token_logprobs, String(model)).toEqual(want.logprobs.map(Math.fround));
    }

    // Same name again: only in place (vLLM's rule), with the version the caller gives.
    const again = await call("/v1/load_lora_adapter", { lora_name: "pol", lora_path: adapterDir });
    expect(again.status).toBe(400);
    expect(again.json.error.message).toMatch(/already been loaded.*load_inplace/);
    const inplace = await call("/v1/load_lora_adapter", { lora_name: "pol", lora_path: await writeAdapter("adapter2", cfg, lora, 4), load_inplace: true, weight_version: "9" });
    expect([inplace.status, inplace.version]).toEqual([200, "9"]);
    const changed = await call("/v1/completions", { ...req, model: "pol" });
    expect(changed.version).toBe("9");
    expect(changed.json.choices[0].logprobs.token_logprobs).not.toEqual(loraGen.logprobs.map(Math.fround));
  });

  it("refuses an adapter that is missing or does not fit the model with a 400, keeping the current one", async () => {
    const cfg = policyB.model.config;
    const wider = await writeAdapter("wider", { ...cfg, intermediateSize: cfg.intermediateSize * 2 }, { r: 2, alpha: 4, targets: ["down"] }, 5);
    const deep = await writeAdapter("deep", { ...cfg, numLayers: cfg.numLayers + 1 }, { r: 2, alpha: 4, targets: ["q"], layers: [cfg.numLayers] }, 6);
    const before = (await call("/health")).version;
    for (const [path, msg] of [
      [join(work, "nowhere"), /not a LoRA adapter directory/],
      [join(work, "a"), /not a LoRA adapter directory/], // a model, not an adapter
      [wider, /down_proj\.lora_A\.weight has \d+ elements/],
      [deep, /layer \d+ is outside/],
    ] as const) {
      const r = await call("/v1/load_lora_adapter", { lora_name: "pol", lora_path: path, load_inplace: true });
      expect(r.status, path).toBe(400);
      expect(r.json.error).toMatchObject({ code: 400, param: "lora_path", type: "invalid_request_error" });
      expect(r.json.error.message).toMatch(msg);
    }
    expect((await call("/health")).version).toBe(before);
    expect((await call("/v1/completions", { prompt: PROMPT, max_tokens: 2, model: "pol" })).status).toBe(200);
    // Full-weight reloads still work, and point an adapter directory at the right endpoint.
    const wrong = await call("/update_weights_from_disk", { model_path: join(work, "adapter") });
    expect(wrong.status).toBe(400);
    expect(wrong.json.message).toMatch(/load_lora_adapter/);
    const full = await call("/update_weights_from_disk", { model_path: join(work, "a"), weight_version: "10" });
    expect(full.json).toMatchObject({ success: true, weight_version: "10" });
  });

  it("unloads the adapter (vLLM's shape): its name is gone and unnamed requests get the base", async () => {
    expect((await call("/v1/unload_lora_adapter", { lora_name: "nope" })).status).toBe(404);
    const r = await call("/v1/unload_lora_adapter", { lora_name: "pol" });
    expect([r.status, r.text, r.version]).toEqual([200, "Success: LoRA adapter 'pol' removed successfully.", "11"]);
    expect((await call("/v1/models")).json.data.map((m: any) => m.id)).toEqual(["tiny"]);
    expect((await call("/v1/completions", { prompt: PROMPT, max_tokens: 2, model: "pol" })).status).toBe(404);
    const req = { prompt: policyA.encodePrompt(PROMPT), max_tokens: 6, seed: 4, logprobs: 0 };
    const [genA] = await policyA.generate([PROMPT], { maxNewTokens: 6, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 4 });
    expect((await call("/v1/completions", req)).json.choices[0].logprobs.token_logprobs).toEqual(genA.logprobs.map(Math.fround));
  });
});

/** Writes a PEFT adapter with random A and B (B is not zero, so it changes the model). */
async function writeAdapter(name: string, cfg: ModelConfig, lora: LoraConfig, seed: number): Promise<string> {
  const rand = mulberry32(seed);
  const weights = new Map<string, Float32Array>();
  for (const l of lora.layers ?? Array.from({ length: cfg.numLayers }, (_, i) => i))
    for (const mod of lora.targets) {
      const [out, inp] = projectionShape(cfg, mod);
      const fill = (n: number, s: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * s);
      weights.set(`${peftModulePath(l, mod)}.lora_A.weight`, fill(lora.r * inp, 1 / Math.sqrt(inp)));
      weights.set(`${peftModulePath(l, mod)}.lora_B.weight`, fill(out * lora.r, 0.5));
    }
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const adapter = LoraAdapter.fromWeights(be, cfg, lora, weights);
  await saveAdapter(dir, adapter, { baseModel: "tiny" });
  adapter.dispose();
  return dir;
}
