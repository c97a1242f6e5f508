// Contract test of the rollout client against recorded vLLM and SGLang response shapes
// (completions with log-probs, SGLang's native /generate, reloads, errors), replayed by fake
// servers on loopback; then the fleet's retry, version and refusal rules on such fakes.
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../src/backend/cpu.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { initModel } from "../src/model/init.js";
import { LoraAdapter } from "../src/model/lora.js";
import { loadAdapter } from "../src/model/peft.js";
import { resolveOptions } from "../src/rl/options.js";
import { Policy } from "../src/rl/policy.js";
import { RolloutFleet } from "../src/rl/rollout-fleet.js";
import { RolloutServer, RolloutServerError } from "../src/rl/rollout-server.js";
import { taskCorpus } from "../src/tasks/index.js";

type Handler = (path: string, body: any, res: ServerResponse) => void;
const servers: Server[] = [];

/** A loopback server answering with `handler`; returns its URL and the requests it saw. */
async function fake(handler: Handler): Promise<{ url: string; seen: { path: string; body: any }[] }> {
  const seen: { path: string; body: any }[] = [];
  const srv = createServer((req: IncomingMessage, res) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      const body = data ? JSON.parse(data) : undefined;
      seen.push({ path: req.url!, body });
      handler(req.url!, body, res);
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen };
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
};

// ---- recorded shapes --------------------------------------------------------------------
const VLLM_MODELS = { object: "list", data: [{ id: "Qwen/Qwen3-0.6B", object: "model", created: 1750000000, owned_by: "vllm", root: "Qwen/Qwen3-0.6B", parent: null, max_model_len: 40960, permission: [{ id: "modelperm-1", object: "model_permission", allow_sampling: true }] }] };
/** vLLM with return_tokens_as_token_ids (before choice.token_ids existed). */
const VLLM_COMPLETION_TOKEN_STRINGS = {
  id: "cmpl-3f1c",
  object: "text_completion",
  created: 1750000001,
  model: "Qwen/Qwen3-0.6B",
  choices: [
    { index: 1, text: " yes", logprobs: { text_offset: [0, 0], token_logprobs: [-0.5, -0.25], tokens: ["token_id:9834", "token_id:151645"], top_logprobs: [{ "token_id:9834": -0.5 }, { "token_id:151645": -0.25 }] }, finish_reason: "stop", stop_reason: null, prompt_logprobs: null },
    { index: 0, text: " Paris.", logprobs: { text_offset: [0, 0, 0], token_logprobs: [-0.31, -1.2, -0.05], tokens: ["token_id:12095", "token_id:13", "token_id:151645"], top_logprobs: [{ "token_id:12095": -0.31 }, { "token_id:13": -1.2 }, { "token_id:151645": -0.05 }] }, finish_reason: "stop", stop_reason: null, prompt_logprobs: null },
  ],
  usage: { prompt_tokens: 5, total_tokens: 10, completion_tokens: 5, prompt_tokens_details: null },
};
/** vLLM >= 0.10.2 with return_token_ids: ids on the choice, log-prob tokens as text. */
const VLLM_COMPLETION_TOKEN_IDS = {
  id: "cmpl-9a0b",
  object: "text_completion",
  created: 1750000002,
  model: "Qwen/Qwen3-0.6B",
  choices: [{ index: 0, text: " Paris", logprobs: { text_offset: [0], token_logprobs: [-0.31], tokens: [" Paris"], top_logprobs: [{ " Paris": -0.31 }] }, finish_reason: "length", stop_reason: null, token_ids: [12095], prompt_logprobs: null, prompt_token_ids: [785, 6722, 315, 9625, 374] }],
  usage: { prompt_tokens: 5, total_tokens: 6, completion_tokens: 1 },
};
const VLLM_ERROR_OLD = { object: "error", message: "This model's maximum context length is 40960 tokens. However, you requested 50000 tokens.", type: "BadRequestError", param: null, code: 400 };
const VLLM_ERROR_NEW = { error: { message: "The model `gpt-4` does not exist.", type: "NotFoundError", param: null, code: 404 } };
const SGLANG_MODELS = { object: "list", data: [{ id: "Qwen/Qwen3-0.6B", object: "model", created: 1750000003, owned_by: "sglang", root: "Qwen/Qwen3-0.6B", max_model_len: 40960 }] };
const sglangItem = (ids: number[], lps: number[], finish: "stop" | "length", version = "3") => ({
  text: "...",
  output_ids: ids,
  meta_info: { id: "a1b2", finish_reason: finish === "stop" ? { type: "stop", matched: 151645 } : { type: "length", length: ids.length }, prompt_tokens: 5, weight_version: version, completion_tokens: ids.length, cached_tokens: 0, output_token_logprobs: ids.map((id, i) => [lps[i], id, null]), e2e_latency: 0.05 },
});
const SGLANG_RELOAD_OK = { success: true, message: "Succeeded to update model weights.", num_paused_requests: 0 };
const SGLANG_RELOAD_FAIL = { success: false, message: "Failed to get weights iterator: /nowhere (repository not found).", num_paused_requests: 0 };
const REQ = { model: "Qwen/Qwen3-0.6B", prompt: [785, 6722], n: 2, maxTokens: 8, sampling: { temperature: 0.7, topK: 0, topP: 0.95, minP: 0 }, seed: 9 };

afterAll(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

describe("rollout client on recorded vLLM shapes", () => {
  it("reads token ids from token_id:N log-prob tokens, in choice order, and sends the RL fields", async () => {
    const f = await fake((path, _b, res) => (path === "/v1/models" ? json(res, 200, VLLM_MODELS) : json(res, 200, VLLM_COMPLETION_TOKEN_STRINGS)));
    const s = new RolloutServer(f.url + "/v1/");
    expect(await s.models()).toEqual([{ id: "Qwen/Qwen3-0.6B", maxModelLen: 40960 }]);
    expect(s.kind).toBe("openai");
    const r = await s.complete(REQ);
    expect(r.choices).toEqual([
      { tokens: [12095, 13, 151645], logprobs: [-0.31, -1.2, -0.05], finishReason: "stop" },
      { tokens: [9834, 151645], logprobs: [-0.5, -0.25], finishReason: "stop" },
    ]);
    expect(r.version).toBeNull();
    const sent = f.seen.find((x) => x.path === "/v1/completions")!.body;
    expect(sent).toMatchObject({ model: "Qwen/Qwen3-0.6B", prompt: [785, 6722], n: 2, max_tokens: 8, temperature: 0.7, top_p: 0.95, top_k: -1, seed: 9, logprobs: 1, return_tokens_as_token_ids: true, return_token_ids: true });
  });

  it("prefers choice.token_ids when the server returns them", async () => {
    const f = await fake((_p, _b, res) => json(res, 200, VLLM_COMPLETION_TOKEN_IDS));
    const r = await new RolloutServer(f.url).complete({ ...REQ, n: 1 });
    expect(r.choices).toEqual([{ tokens: [12095], logprobs: [-0.31], finishReason: "length" }]);
  });

  it("turns both vLLM error shapes into errors with the server's message, not retried", async () => {
    for (const [status, body, msg] of [
      [400, VLLM_ERROR_OLD, /maximum context length is 40960/],
      [404, VLLM_ERROR_NEW, /The model `gpt-4` does not exist/],
    ] as const) {
      const f = await fake((_p, _b, res) => json(res, status, body));
      const e = await new RolloutServer(f.url).complete(REQ).catch((x) => x);
      expect(e).toBeInstanceOf(RolloutServerError);
      expect(e.status).toBe(status);
      expect(e.message).toMatch(msg);
      expect(e.retryable).toBe(false);
    }
  });

  it("refuses a completion without token ids or log-probs with a message that says why", async () => {
    const noIds = structuredClone(VLLM_COMPLETION_TOKEN_IDS) as any;
    delete noIds.choices[0].token_ids;
    const noLps = structuredClone(VLLM_COMPLETION_TOKEN_IDS) as any;
    noLps.choices[0].logprobs = null;
    for (const [body, msg] of [
      [noIds, /no token ids: serve with vLLM \(return_tokens_as_token_ids\)/],
      [noLps, /no logprobs/],
    ] as const) {
      const f = await fake((_p, _b, res) => json(res, 200, body));
      await expect(new RolloutServer(f.url).complete({ ...REQ, n: 1 })).rejects.toThrow(msg);
    }
  });

  it("loads a LoRA adapter (plain-text success) and reports a failed load", async () => {
    let ok = true;
    const f = await fake((_p, _b, res) => {
      if (ok) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("Success: LoRA adapter 'policy' added successfully.");
      } else json(res, 400, { object: "error", message: "The lora adapter 'policy' has already been loaded.", type: "InvalidUserInput", param: null, code: 400 });
    });
    const s = new RolloutServer(f.url);
    await s.loadLoraAdapter("policy", "/ckpt/adapter");
    expect(f.seen[0]).toEqual({ path: "/v1/load_lora_adapter", body: { lora_name: "policy", lora_path: "/ckpt/adapter", load_inplace: true } });
    await s.loadLoraAdapter("policy", "/ckpt/adapter", "3");
    expect(f.seen[1].body).toEqual({ lora_name: "policy", lora_path: "/ckpt/adapter", load_inplace: true, weight_version: "3" });
    ok = false;
    await expect(s.loadLoraAdapter("policy", "/ckpt/adapter")).rejects.toThrow(/already been loaded/);
  });

  it("says how to fix a reload endpoint the server lacks (FastAPI's 404): adapters for vLLM, full weights for SGLang or anvil serve", async () => {
    const f = await fake((_p, _b, res) => json(res, 404, { detail: "Not Found" }));
    const s = new RolloutServer(f.url);
    const full = await s.updateWeightsFromDisk("/w", "1").catch((x) => x);
    expect(full.message).toMatch(/no \/update_weights_from_disk.*train an adapter \(--lora-r or --adapter\) to use vLLM/);
    expect(full.retryable).toBe(false);
    const lora = await s.loadLoraAdapter("p", "/a", "1").catch((x) => x);
    expect(lora.message).toMatch(/no \/v1\/load_lora_adapter.*--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True/);
    expect(lora.retryable).toBe(false);
  });

  it("classifies 5xx, timeouts and refused connections as retryable", async () => {
    const f503 = await fake((_p, _b, res) => json(res, 503, { error: { message: "overloaded", type: "ServiceUnavailable", param: null, code: 503 } }));
    const e1 = await new RolloutServer(f503.url).complete(REQ).catch((x) => x);
    expect([e1.status, e1.retryable]).toEqual([503, true]);
    const silent = await fake(() => {}); // never answers
    const e2 = await new RolloutServer(silent.url, 200).complete(REQ).catch((x) => x);
    expect([e2.status, e2.retryable]).toEqual([0, true]);
    expect(e2.message).toMatch(/timed out after 200 ms/);
    const e3 = await new RolloutServer("http://127.0.0.1:1").complete(REQ).catch((x) => x);
    expect([e3.status, e3.retryable]).toEqual([0, true]);
  });
});

describe("rollout client on recorded SGLang shapes", () => {
  it("uses the native /generate for an SGLang server and reads output_token_logprobs and weight_version", async () => {
    const f = await fake((path, _b, res) => {
      if (path === "/v1/models") return json(res, 200, SGLANG_MODELS);
      json(res, 200, [sglangItem([12095, 151645], [-0.3, -0.1], "stop"), sglangItem([13, 13, 13], [-1, -2, -3], "length")]);
    });
    const s = new RolloutServer(f.url);
    await s.models();
    expect(s.kind).toBe("sglang");
    const r = await s.complete(REQ);
    expect(r).toEqual({
      choices: [
        { tokens: [12095, 151645], logprobs: [-0.3, -0.1], finishReason: "stop" },
        { tokens: [13, 13, 13], logprobs: [-1, -2, -3], finishReason: "length" },
      ],
      version: "3",
    });
    expect(f.seen[1]).toEqual({ path: "/generate", body: { input_ids: [REQ.prompt, REQ.prompt], sampling_params: { temperature: 0.7, top_p: 0.95, top_k: -1, min_p: 0, max_new_tokens: 8 }, return_logprob: true } });
  });

  it("sends update_weights_from_disk in SGLang's shape and surfaces its failure message", async () => {
    let ok = true;
    const f = await fake((_p, _b, res) => json(res, ok ? 200 : 400, ok ? SGLANG_RELOAD_OK : SGLANG_RELOAD_FAIL));
    const s = new RolloutServer(f.url);
    await s.updateWeightsFromDisk("/ckpt/weights-v3", "3");
    expect(f.seen[0]).toEqual({ path: "/update_weights_from_disk", body: { model_path: "/ckpt/weights-v3", weight_version: "3" } });
    ok = false;
    const e = await s.updateWeightsFromDisk("/nowhere", "4").catch((x) => x);
    expect(e.message).toMatch(/Failed to get weights iterator/);
    expect(e.retryable).toBe(false);
  });
});

describe("rollout fleet", () => {
  let policy: Policy;
  let work: string;
  let probe: number[];
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "anvil-fleet-"));
    await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 200), out: join(work, "m"), seed: 1 });
    policy = await Policy.load(join(work, "m"), new CpuBackend({ threads: 1 }));
    const tok = policy.tokenizer;
    probe = tok.encode(tok.applyChatTemplate([{ role: "user", content: "If rain then not wind. Is wind true or false?" }], { addGenerationPrompt: true }));
  });

  /** An anvil-like fake: reports its version, answers n choices of [5, 6, eos]. */
  async function anvilLike(opts: { fail?: () => boolean; version?: () => string; tokenize?: number[] } = {}) {
    let version = "0";
    return fake((path, body, res) => {
      if (path === "/v1/models") return json(res, 200, { object: "list", data: [{ id: "m", owned_by: "anvil", max_model_len: 2048 }] });
      if (path === "/tokenize") return json(res, 200, { tokens: opts.tokenize ?? probe, count: 0, max_model_len: 2048 });
      if (path === "/health") return json(res, 200, { status: "ok" }, { "x-weight-version": version });
      if (path === "/update_weights_from_disk") {
        version = body.weight_version;
        return json(res, 200, SGLANG_RELOAD_OK, { "x-weight-version": version });
      }
      if (path === "/v1/load_lora_adapter") {
        version = body.weight_version;
        res.writeHead(200, { "content-type": "text/plain", "x-weight-version": version });
        return res.end(`Success: LoRA adapter '${body.lora_name}' added successfully.`);
      }
      if (opts.fail?.()) return json(res, 500, { error: { message: "engine crashed", type: "InternalServerError", param: null, code: 500 } });
      const choices = Array.from({ length: body.n }, (_, i) => ({ index: i, text: "", token_ids: [5, 6, policy.eosId], logprobs: { tokens: [], token_logprobs: [-1, -2, -3] }, finish_reason: "stop" }));
      json(res, 200, { choices }, { "x-weight-version": opts.version?.() ?? version });
    });
  }

  const fleetOf = (urls: string[], logs: string[] = []) => new RolloutFleet(urls, policy, { syncDir: join(work, "sync"), tokenizerDir: join(work, "m"), timeoutMs: 2000, log: (l) => logs.push(l), backoffMs: 20 });
  const GEN = { maxNewTokens: 8, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 1 };

  it("spreads groups over the servers and retries a failing server's groups on the other, once each", async () => {
    let calls = 0;
    const bad = await anvilLike({ fail: () => ++calls > 0 });
    const good = await anvilLike();
    const logs: string[] = [];
    const fleet = fleetOf([bad.url, good.url], logs);
    await fleet.connect();
    await fleet.publish(policy.model, "1");
    const prompts = ["a", "a", "b", "b", "c", "c", "d", "d"];
    const gens = await fleet.generate(prompts, GEN);
    expect(gens).toHaveLength(8);
    for (const g of gens) expect(g).toMatchObject({ tokens: [5, 6, policy.eosId], logprobs: [-1, -2, -3], finishReason: "eos" });
    const asked = good.seen.filter((x) => x.path === "/v1/completions");
    expect(asked.map((x) => x.body.n)).toEqual([2, 2, 2, 2]); // every group answered once, by the good server
    expect(new Set(asked.map((x) => x.body.seed)).size).toBe(4); // a seed per group
    const st = fleet.endStep(1);
    expect(st.weight_version).toBe(1);
    expect(st.rollout_retries).toBeGreaterThan(0);
    expect(logs.some((l) => /failed \(.*engine crashed/.test(l))).toBe(true);
    fleet.close();
  });

  it("spreads the groups of a step evenly over healthy servers", async () => {
    const [a, b] = [await anvilLike(), await anvilLike()];
    const fleet = fleetOf([a.url, b.url]);
    await fleet.connect();
    await fleet.publish(policy.model, "0");
    await fleet.generate(["a", "a", "b", "b", "c", "c", "d", "d"], GEN);
    const count = (f: typeof a) => f.seen.filter((x) => x.path === "/v1/completions").length;
    expect([count(a), count(b)]).toEqual([2, 2]);
    expect(fleet.endStep(1).rollout_retries).toBe(0);
    fleet.close();
  });

  it("checks rollout server URLs with the other options and turns truncated IS on", () => {
    expect(() => resolveOptions({ rolloutServer: "http://a:1,localhost:8000" })).toThrow(/"localhost:8000" is not an http\(s\) URL/);
    expect(resolveOptions({ rolloutServer: "http://a:1, https://b/v1" }).tisCap).toBe(2);
    expect(resolveOptions({ rolloutServer: "http://a:1", tisCap: 0 }).tisCap).toBe(0);
  });

  it("does not use an answer from another weight version", async () => {
    let stale = 2;
    const lagging = await anvilLike({ version: () => (stale-- > 0 ? "0" : "1") });
    const fleet = fleetOf([lagging.url]);
    await fleet.connect();
    await fleet.publish(policy.model, "1");
    const gens = await fleet.generate(["a", "a"], GEN);
    expect(gens).toHaveLength(2);
    expect(fleet.endStep(1)).toEqual({ weight_version: 1, rollout_retries: 2 });
    // It was reloaded before being used again.
    expect(lagging.seen.filter((x) => x.path === "/update_weights_from_disk").length).toBeGreaterThan(1);
    fleet.close();
  });

  it("fails the step with a clear error when no server is usable for the timeout", async () => {
    const fleet = new RolloutFleet([(await anvilLike({ fail: () => true })).url], policy, { syncDir: join(work, "sync2"), tokenizerDir: join(work, "m"), timeoutMs: 600, log: () => {}, backoffMs: 20 });
    await fleet.connect();
    const t0 = Date.now();
    await expect(fleet.generate(["a", "a"], GEN)).rejects.toThrow(/no rollout server was usable for 600 ms|failed after 8 attempts/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    fleet.close();
  });

  it("refuses servers whose model or tokenizer does not match", async () => {
    const a = await anvilLike();
    const other = await fake((path, _b, res) => json(res, 200, { object: "list", data: [{ id: "another-model", owned_by: "vllm" }] }));
    await expect(fleetOf([a.url, other.url]).connect()).rejects.toThrow(/does not serve model "m"/);
    const wrongTok = await anvilLike({ tokenize: [1, 2, 3] });
    await expect(fleetOf([wrongTok.url]).connect()).rejects.toThrow(/tokenizes differently/);
  });

  it("under LoRA publishes the adapter (PEFT layout, atomically), loads it in place and asks for it by name", async () => {
    const learner = (await loadCheckpoint(join(work, "m"), policy.model.backend)).model;
    learner.attachAdapter(LoraAdapter.create(learner.backend, learner.config, { r: 2, alpha: 4, targets: ["q", "v"] }, 7));
    const [a, b] = [await anvilLike(), await anvilLike()];
    const syncDir = join(work, "sync-lora");
    const fleet = new RolloutFleet([a.url, b.url], policy, { syncDir, tokenizerDir: join(work, "m"), baseModel: "base-model", timeoutMs: 2000, log: () => {}, backoffMs: 20 });
    await fleet.connect();
    for (const v of ["0", "1", "2"]) await fleet.publish(learner, v);
    // The last two versions are kept; each is a PEFT adapter directory, no full weights.
    expect(readdirSync(syncDir).sort()).toEqual(["adapter-v1", "adapter-v2"]);
    const dir = join(syncDir, "adapter-v2");
    expect(readdirSync(dir).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    const back = await loadAdapter(dir, learner.backend, learner.config);
    expect(back.config).toMatchObject({ r: 2, alpha: 4, targets: ["q", "v"] });
    back.dispose();
    for (const f of [a, b]) {
      const loads = f.seen.filter((x) => x.path === "/v1/load_lora_adapter").map((x) => x.body);
      expect(loads).toEqual(["0", "1", "2"].map((v) => ({ lora_name: "anvil-policy", lora_path: join(syncDir, `adapter-v${v}`), load_inplace: true, weight_version: v })));
      expect(f.seen.some((x) => x.path === "/update_weights_from_disk")).toBe(false);
    }
    await fleet.generate(["a", "a", "b", "b"], GEN);
    const asked = [...a.seen, ...b.seen].filter((x) => x.path === "/v1/completions");
    expect(asked.map((x) => x.body.model)).toEqual(["anvil-policy", "anvil-policy"]); // vLLM applies an adapter only to requests naming it
    expect(fleet.endStep(3)).toEqual({ weight_version: 2, rollout_retries: 0 });
    fleet.close();
    learner.dispose();
  });

  it("under LoRA drives vLLM (no version reported) and refuses SGLang; full weights refuse vLLM with the fix", async () => {
    const learner = (await loadCheckpoint(join(work, "m"), policy.model.backend)).model;
    const vllm = await fake((path, body, res) => {
      if (path === "/v1/models") return json(res, 200, { object: "list", data: [{ id: "m", owned_by: "vllm", max_model_len: 2048 }] });
      if (path === "/v1/load_lora_adapter") return res.writeHead(200, { "content-type": "text/plain" }), res.end("Success: LoRA adapter 'anvil-policy' added successfully.");
      if (path === "/v1/completions") return json(res, 200, { choices: Array.from({ length: body.n }, (_, i) => ({ index: i, text: "", token_ids: [5, policy.eosId], logprobs: { tokens: [], token_logprobs: [-1, -2] }, finish_reason: "stop" })) });
      json(res, 404, { detail: "Not Found" }); // no /tokenize, no /update_weights_from_disk
    });
    const sglang = await fake((path, _b, res) => (path === "/v1/models" ? json(res, 200, { object: "list", data: [{ id: "m", owned_by: "sglang" }] }) : json(res, 404, { detail: "Not Found" })));
    const fleetOn = (url: string, sync: string) => new RolloutFleet([url], policy, { syncDir: join(work, sync), tokenizerDir: join(work, "m"), timeoutMs: 2000, log: () => {}, backoffMs: 20 });

    const full = fleetOn(vllm.url, "sync-v1");
    await full.connect();
    await expect(full.publish(learner, "0")).rejects.toThrow(/train an adapter \(--lora-r or --adapter\) to use vLLM/);
    full.close();

    learner.attachAdapter(LoraAdapter.create(learner.backend, learner.config, { r: 2, alpha: 4, targets: ["q"] }, 8));
    const lora = fleetOn(vllm.url, "sync-v2");
    await lora.connect();
    await lora.publish(learner, "0");
    expect(existsSync(join(work, "sync-v2", "adapter-v0", "adapter_model.safetensors"))).toBe(true);
    const gens = await lora.generate(["a", "a"], GEN);
    expect(gens.map((g) => g.tokens)).toEqual([[5, policy.eosId], [5, policy.eosId]]);
    expect(lora.endStep(1)).toEqual({ weight_version: 0, rollout_retries: 0 });
    lora.close();

    const sg = fleetOn(sglang.url, "sync-v3");
    await sg.connect();
    await expect(sg.publish(learner, "0")).rejects.toThrow(/SGLang.*LoRA training use vLLM or anvil serve/);
    sg.close();
    learner.dispose();
  });
});
