// Rollouts from a fleet of OpenAI-compatible servers, and the weight sync that keeps them on
// the learner's weights.
//
// - connect(): every server must serve the same model id and tokenize like the learner
//   (checked on a chat-templated probe through /tokenize when the server has it); the first
//   publish() then loads the learner's weights, which fails loudly on an architecture mismatch.
// - generate(): each group of identical prompts (the G rollouts of a GRPO group) is one request
//   with n = G, sent to the server with the fewest requests in flight. Its seed is a function of
//   the step seed and the group's position, so a retry reproduces it on any anvil serve.
// - A request that fails for a retryable reason (unreachable, timeout, 5xx) or comes back from
//   another weight version marks that server down for a backoff period and is sent again to
//   another one. A group's result is stored once, by its position: nothing is lost or counted
//   twice. A server that comes back is reloaded to the current version before it is used.
// - publish(): the learner's weights are written atomically to syncDir/weights-vN and every
//   live server is asked to load them (SGLang's /update_weights_from_disk shape) before the
//   next rollout, so every rollout of a step comes from one weight version. Under LoRA only the
//   adapter is published (PEFT layout, syncDir/adapter-vN) and loaded in place under one name
//   (vLLM's /v1/load_lora_adapter, which anvil serve also answers); rollouts then name that
//   adapter as their model, so vLLM applies it.
import { readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { saveCheckpoint } from "../model/checkpoint.js";
import { rowSeed } from "../model/generate.js";
import type { Model } from "../model/model.js";
import type { Policy, PolicyGenerateOptions, PolicyGeneration, RolloutSource } from "./policy.js";
import { RolloutServer, RolloutServerError, type CompletionResult } from "./rollout-server.js";

export interface FleetOptions {
  /** Where published weights go; every server must be able to read it. */
  syncDir: string;
  /** Model directory whose tokenizer files are published with the weights. */
  tokenizerDir: string;
  /** Recorded as base_model_name_or_path of a published adapter. */
  baseModel?: string;
  /** The name published adapters are loaded under, and rollouts ask for (default "anvil-policy"). */
  loraName?: string;
  timeoutMs: number;
  log: (line: string) => void;
  /** Attempts per group before the step fails (default 8). */
  maxAttempts?: number;
  /** First backoff in ms, doubled per failure of a server (default 250, at most 8 s). */
  backoffMs?: number;
}

interface Member {
  server: RolloutServer;
  inFlight: number;
  /** Consecutive failures; the backoff grows with them. */
  failures: number;
  downUntil: number;
  /** The version this server was last confirmed to serve. */
  version: string | null;
  /** A health check and reload are under way. */
  reviving: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RolloutFleet implements RolloutSource {
  private members: Member[];
  private model = "";
  private maxModelLen = Infinity;
  /** The version every rollout must come from; published weights live in publishedDir. */
  version: string | null = null;
  private publishedDir: string | null = null;
  /** What was published: full weights, or a LoRA adapter (the learner trains one). */
  private publishedKind: "weights" | "adapter" = "weights";
  private seen = new Set<string>();
  /** Requests sent again after a failure, since the last takeStepStats(). */
  private retries = 0;

  constructor(
    urls: string[],
    private policy: Policy,
    private opts: FleetOptions,
  ) {
    if (urls.length === 0) throw new RangeError("rollout servers: give at least one URL");
    this.members = urls.map((u) => ({ server: new RolloutServer(u, opts.timeoutMs), inFlight: 0, failures: 0, downUntil: 0, version: null, reviving: false }));
  }

  /** Checks every server's model and tokenizer; refuses a fleet that does not match. */
  async connect(): Promise<void> {
    const tok = this.policy.tokenizer;
    const probeText = tok.hasChatTemplate ? tok.applyChatTemplate([{ role: "user", content: "If rain then not wind. Is wind true or false?" }], { addGenerationPrompt: true }) : "If rain then not wind.";
    const expected = tok.encode(probeText);
    for (const m of this.members) {
      const url = m.server.url;
      const models = await m.server.models().catch((e: Error) => {
        throw new Error(`rollout server ${url} is not usable: ${e.message}`);
      });
      if (!this.model) this.model = models[0]?.id ?? "";
      const entry = models.find((x) => x.id === this.model);
      if (!entry) throw new Error(`rollout server ${url} does not serve model "${this.model}" (it serves ${models.map((x) => x.id).join(", ") || "nothing"}); every server must serve the same model`);
      if (entry.maxModelLen !== null) this.maxModelLen = Math.min(this.maxModelLen, entry.maxModelLen);
      const ids = await m.server.tokenize(this.model, probeText);
      if (ids === null) this.opts.log(`anvil: rollout server ${url} has no /tokenize: its tokenizer cannot be checked (token ids it returns are still range-checked)`);
      else if (ids.length !== expected.length || ids.some((t, i) => t !== expected[i]))
        throw new Error(`rollout server ${url} tokenizes differently from the learner's tokenizer (${this.opts.tokenizerDir}): serve the same model`);
      const h = await m.server.health().catch(() => ({ version: null }));
      m.version = h.version;
    }
    this.opts.log(`anvil: rollouts from ${this.members.length} server(s) serving "${this.model}": ${this.members.map((m) => m.server.url).join(", ")}`);
  }

  /**
   * Publishes the learner's weights as `version` and has every live server load them. A server
   * that rejects them (4xx: another architecture or tokenizer) stops the run; one that is down
   * is reloaded when it comes back.
   */
  async publish(model: Model, version: string): Promise<void> {
    const kind = model.adapter ? "adapter" : "weights";
    const dir = resolve(join(this.opts.syncDir, `${kind}-v${version}`));
    // saveCheckpoint writes the adapter alone when one is attached (no tokenizer: it is the base's).
    await saveCheckpoint(dir, model, kind === "adapter" ? { baseModel: this.opts.baseModel } : { tokenizerDir: this.opts.tokenizerDir });
    this.publishedKind = kind;
    const previous = this.publishedDir;
    this.publishedDir = dir;
    this.version = version;
    const results = await Promise.all(this.members.map((m) => this.sync(m).then(() => true, (e: Error) => this.markDown(m, e))));
    if (!results.some(Boolean)) this.opts.log(`anvil: no rollout server took weight version ${version} yet; waiting for one to come back`);
    // Keep the new version and the one before it (a server may still be reading it).
    for (const d of await readdir(this.opts.syncDir).catch(() => [] as string[])) {
      const full = resolve(join(this.opts.syncDir, d));
      if (/^(weights|adapter)-v/.test(d) && full !== dir && full !== previous) await rm(full, { recursive: true, force: true });
    }
  }

  /**
   * Ends a step: checks that all its rollouts came from one weight version and returns it
   * (as a number when it is one) with the requests retried, for the step's metrics.
   */
  endStep(step: number): { weight_version: number; rollout_retries: number } {
    const versions = [...this.seen];
    const retries = this.retries;
    this.seen.clear();
    this.retries = 0;
    if (versions.length > 1) throw new Error(`step ${step}: rollouts came from weight versions ${versions.join(", ")}; a step must use one`);
    this.opts.log(`anvil: step ${step}: rollouts from weight version ${versions[0] ?? "(none)"}${retries ? `, ${retries} request(s) retried on other servers` : ""}`);
    const v = Number(versions[0]);
    return { weight_version: Number.isFinite(v) ? v : -1, rollout_retries: retries };
  }

  close(): void {
    for (const m of this.members) m.server.close();
  }

  /** The model rollouts ask for: the published adapter's name under LoRA (vLLM applies an adapter only to requests naming it), else the served model. */
  private get requestModel(): string {
    return this.publishedDir !== null && this.publishedKind === "adapter" ? this.loraName : this.model;
  }

  private get loraName(): string {
    return this.opts.loraName ?? "anvil-policy";
  }

  async generate(prompts: string[], opts: PolicyGenerateOptions): Promise<PolicyGeneration[]> {
    // Consecutive identical prompts form one request with n = their count.
    const groups: { start: number; n: number }[] = [];
    prompts.forEach((p, i) => {
      const last = groups[groups.length - 1];
      if (last && prompts[last.start] === p) last.n++;
      else groups.push({ start: i, n: 1 });
    });
    const out: PolicyGeneration[] = new Array(prompts.length);
    await Promise.all(
      groups.map(async ({ start, n }) => {
        const prompt = this.policy.encodePrompt(prompts[start]);
        const maxTokens = Math.max(1, Math.min(opts.maxNewTokens, this.maxModelLen - prompt.length));
        const seed = rowSeed(opts.seed, opts.rowKeys?.[start] ?? start, 0);
        const res = await this.request((s) => s.complete({ model: this.requestModel, prompt, n, maxTokens, sampling: opts.sampling, seed }));
        if (res.choices.length !== n) throw new Error(`rollout server returned ${res.choices.length} completions for n=${n}`);
        res.choices.forEach((c, j) => (out[start + j] = this.toGeneration(c.tokens, c.logprobs, c.finishReason)));
      }),
    );
    return out;
  }

  private toGeneration(tokens: number[], logprobs: number[], finish: string): PolicyGeneration {
    const { policy } = this;
    const V = policy.model.config.vocabSize;
    const bad = tokens.find((t) => t >= V);
    if (bad !== undefined) throw new Error(`a rollout server returned token id ${bad}, outside the learner's vocabulary (${V}): it serves another model`);
    // Any of the model's end tokens (Qwen ends on <|im_end|> or <|endoftext|>) counts as EOS.
    const ends = new Set([policy.eosId, ...policy.model.config.eosTokenIds]);
    const eos = tokens.length > 0 && ends.has(tokens[tokens.length - 1]);
    let finishReason: PolicyGeneration["finishReason"] = finish === "length" ? "length" : eos ? "eos" : "stop";
    // A server that drops the EOS it stopped on: keep the EOS (the policy must learn to end);
    // its log-prob is unknown, so the row carries none and truncated IS weighs it 1.
    if (finish === "stop" && !eos) {
      tokens = [...tokens, policy.eosId];
      logprobs = [];
      finishReason = "eos";
    }
    return { tokens, logprobs, text: policy.decodeCompletion(tokens), finishReason };
  }

  /** Runs `call` on a live server, retrying elsewhere with backoff; checks the weight version. */
  private async request(call: (s: RolloutServer) => Promise<CompletionResult>): Promise<CompletionResult> {
    const maxAttempts = this.opts.maxAttempts ?? 8;
    let last: Error | null = null;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const m = await this.pick();
      try {
        const res = await call(m.server);
        if (res.version !== null && this.version !== null && res.version !== this.version)
          throw new RolloutServerError(m.server.url, `answered from weight version ${res.version}, expected ${this.version}`);
        m.failures = 0;
        this.seen.add(res.version ?? this.version ?? "initial");
        return res;
      } catch (e) {
        if (!(e instanceof RolloutServerError) || !e.retryable) throw e;
        last = e;
        this.retries++;
        this.markDown(m, e);
      } finally {
        m.inFlight--;
      }
    }
    throw new Error(`rollouts failed after ${maxAttempts} attempts; last error: ${last?.message}`);
  }

  private markDown(m: Member, e: Error, quiet = false): false {
    if (e instanceof RolloutServerError && !e.retryable) throw e;
    m.failures++;
    m.version = null;
    const wait = Math.min(8000, (this.opts.backoffMs ?? 250) * 2 ** (m.failures - 1));
    m.downUntil = Date.now() + wait;
    if (!quiet || m.failures <= 2) this.opts.log(`anvil: rollout server ${m.server.url} failed (${e.message}); its requests go to the others, trying it again in ${wait} ms`);
    return false;
  }

  /** The live server with the fewest requests in flight (counting this one); waits for one to come back if none is. */
  private async pick(): Promise<Member> {
    const since = Date.now();
    for (;;) {
      const now = Date.now();
      if (now - since > this.opts.timeoutMs) throw new Error(`no rollout server was usable for ${this.opts.timeoutMs} ms (${this.members.map((m) => m.server.url).join(", ")})`);
      for (const m of this.members) if (m.downUntil <= now && m.version !== this.version && !m.reviving) void this.revive(m);
      const live = this.members.filter((m) => m.downUntil <= now && !m.reviving && m.version === this.version);
      if (live.length) {
        // Counted here, synchronously, so that groups dispatched together spread out.
        const m = live.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
        m.inFlight++;
        return m;
      }
      if (this.members.every((m) => m.downUntil === Infinity)) throw new Error("every rollout server was left out (see the log above)");
      const waits = this.members.filter((m) => !m.reviving).map((m) => m.downUntil - now);
      await sleep(Math.min(100, Math.max(10, ...waits.filter((w) => w > 0))));
    }
  }

  /** Brings a server back after its backoff: alive (/health), then on the current weights. */
  private async revive(m: Member): Promise<void> {
    m.reviving = true;
    try {
      await m.server.health();
      await this.sync(m);
      if (m.failures > 0) this.opts.log(`anvil: rollout server ${m.server.url} is back (weight version ${m.version})`);
    } catch (e) {
      if (e instanceof RolloutServerError && !e.retryable) {
        // It answers but rejects the learner's weights: it serves something else now.
        m.downUntil = Infinity;
        this.opts.log(`anvil: rollout server ${m.server.url} is left out for the rest of the run: ${e.message}`);
      } else this.markDown(m, e as Error, true);
    } finally {
      m.reviving = false;
    }
  }

  /** Loads the current published weights (or adapter) on one server. */
  private async sync(m: Member): Promise<void> {
    if (this.publishedDir === null || this.version === null) return;
    if (this.publishedKind === "weights") await m.server.updateWeightsFromDisk(this.publishedDir, this.version);
    else if (m.server.kind === "sglang")
      throw new RolloutServerError(m.server.url, "is SGLang, whose LoRA endpoints the learner does not drive yet: for LoRA training use vLLM or anvil serve, or SGLang with full fine-tuning", 400);
    else await m.server.loadLoraAdapter(this.loraName, this.publishedDir, this.version);
    m.version = this.version;
  }
}
