// The serving engine: a queue of generation jobs batched through the fused sampler.
//
// Jobs that share sampling settings (temperature, top-k/p, min-p) are decoded together in one
// generate() call, up to maxBatch rows (a job with n choices takes n rows). The batch yields to
// the event loop between decode steps, so HTTP requests keep arriving and a client that goes
// away ends its rows at the next step (generate compacts them out of the batch). A new batch
// starts when the current one ends (no continuous batching).
//
// Weights: a reload waits for the running batch, then copies the new parameters in place.
// Every job reports the weight version its whole batch ran under, so a trainer can check that
// a step's rollouts all come from one version.
//
// Adapters: the engine holds at most one LoRA adapter (PEFT layout, src/model/peft.ts) under a
// name. Loading one waits for the running batch like a weight reload, replaces the current
// adapter and bumps the version. A job either uses the adapter or runs the base alone (vLLM's
// rule: requests naming the base model get the base); the two kinds are batched apart.
import type { SampleOptions } from "../backend/backend.js";
import { loadCheckpoint } from "../model/checkpoint.js";
import { generate, type FinishReason } from "../model/generate.js";
import { isAdapterDir, loadAdapter } from "../model/peft.js";
import { Tokenizer } from "../model/tokenizer.js";
import type { Policy } from "../rl/policy.js";

export interface ServeJob {
  /** Prompt token ids (chat template already applied for chat requests). */
  prompt: number[];
  /** Completions to draw for this prompt. */
  n: number;
  maxTokens: number;
  sampling: SampleOptions;
  /** Apply the loaded adapter (false: the base model alone). Ignored when none is loaded. */
  adapter: boolean;
  /** Base seed: choice i uses row key i, as Policy.generate does for row i of a batch. */
  seed: number;
  /** Stop strings: a choice ends when its text contains one (cut before it in the text). */
  stop: string[];
  /** Set when the client disconnected: its rows end at the next decode step. */
  signal: AbortSignal;
  /** Called when the job's batch starts, with the weight version it runs under. */
  onStart?: (version: string) => void;
  onToken?: (choice: number, token: number, logprob: number) => void;
}

export interface ServeChoice {
  tokens: number[];
  logprobs: number[];
  /** Decoded text without EOS, cut before the stop string that ended it. */
  text: string;
  finishReason: FinishReason;
}

export interface ServeResult {
  choices: ServeChoice[];
  version: string;
}

export class ReloadError extends Error {
  override name = "ReloadError";
}

interface Pending {
  job: ServeJob;
  resolve: (r: ServeResult) => void;
  reject: (e: Error) => void;
}

interface Reload {
  /** Full weights (an HF model directory), a LoRA adapter (a PEFT directory), or no adapter. */
  kind: "weights" | "adapter" | "unload";
  /** The adapter's name (kind "adapter"). */
  name: string;
  dir: string;
  version: string | undefined;
  resolve: (version: string) => void;
  reject: (e: Error) => void;
}

const batchKey = (j: ServeJob) => `${j.adapter ? 1 : 0}|${j.sampling.greedy ? 1 : 0}|${j.sampling.temperature}|${j.sampling.topK}|${j.sampling.topP}|${j.sampling.minP}`;

/** The loaded adapter: the name clients pass as "model", and where it was loaded from. */
export interface ServedAdapter {
  name: string;
  path: string;
}

export class ServeEngine {
  private queue: Pending[] = [];
  private reloads: Reload[] = [];
  private running = false;
  private reloadCount = 0;
  /** Rows being decoded now, and jobs ended early because their client left. */
  readonly stats = { runningRows: 0, aborted: 0, completed: 0, batches: 0 };
  /** The adapter attached to the policy's model, if any (set by whoever attached it, or by loadAdapter). */
  lora: ServedAdapter | null = null;

  constructor(
    readonly policy: Policy,
    /** Rows decoded together at most (a larger n still runs, alone). */
    readonly maxBatch = 64,
    public version = "0",
    /** How long an idle engine waits for more requests after the first arrives (ms). */
    readonly batchWindowMs = 2,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  submit(job: ServeJob): Promise<ServeResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  /**
   * Loads the parameters of the model directory `dir` (same architecture and tokenizer) once
   * the running batch ends. Resolves with the new weight version.
   */
  reload(dir: string, version?: string): Promise<string> {
    return this.enqueueReload("weights", "", dir, version);
  }

  /**
   * Loads the PEFT adapter in `dir` as `name` once the running batch ends, replacing the
   * current adapter (whatever its name). Resolves with the new weight version; rejects with a
   * ReloadError when the directory is not an adapter or the adapter does not fit the model.
   */
  loadAdapter(name: string, dir: string, version?: string): Promise<string> {
    return this.enqueueReload("adapter", name, dir, version);
  }

  /** Takes the adapter off once the running batch ends (the base alone is served). Resolves with the new weight version. */
  unloadAdapter(version?: string): Promise<string> {
    return this.enqueueReload("unload", "", "", version);
  }

  private enqueueReload(kind: Reload["kind"], name: string, dir: string, version: string | undefined): Promise<string> {
    return new Promise((resolve, reject) => {
      this.reloads.push({ kind, name, dir, version, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    this.running = true;
    // A short wait lets requests that arrive together (concurrent clients) share the batch.
    setTimeout(() => {
      this.loop()
        .catch((e) => process.stderr.write(`anvil serve: engine error: ${(e as Error).message}\n`))
        .finally(() => {
          this.running = false;
          if (this.queue.length || this.reloads.length) this.pump();
        });
    }, this.batchWindowMs);
  }

  private async loop(): Promise<void> {
    for (;;) {
      while (this.reloads.length) await this.applyReload(this.reloads.shift()!);
      this.queue = this.queue.filter((p) => {
        if (!p.job.signal.aborted) return true;
        this.stats.aborted++;
        p.reject(new Error("client disconnected"));
        return false;
      });
      if (!this.queue.length) return;
      // Requests that came in during a batch start the next one at once; after an idle spell
      // pump() waits batchWindowMs so that concurrent clients share the batch.
      await this.runBatch(this.takeBatch());
    }
  }

  /** The oldest job plus every queued job with the same sampling settings that still fits. */
  private takeBatch(): Pending[] {
    const key = batchKey(this.queue[0].job);
    const batch: Pending[] = [];
    let rows = 0;
    this.queue = this.queue.filter((p) => {
      const fits = batch.length === 0 || rows + p.job.n <= this.maxBatch;
      if (batchKey(p.job) !== key || !fits) return true;
      batch.push(p);
      rows += p.job.n;
      return false;
    });
    return batch;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const { policy } = this;
    const tok = policy.tokenizer;
    const version = this.version;
    const rowJob: number[] = [];
    const rowChoice: number[] = [];
    batch.forEach((p, j) => {
      for (let c = 0; c < p.job.n; c++) {
        rowJob.push(j);
        rowChoice.push(c);
      }
    });
    const prompts = rowJob.map((j) => batch[j].job.prompt);
    const body = (tokens: readonly number[]) => (tokens.length && tokens[tokens.length - 1] === policy.eosId ? tokens.slice(0, -1) : [...tokens]);
    const stopAt = (text: string, stop: string[]) => Math.min(...stop.map((s) => (text.includes(s) ? text.indexOf(s) : Infinity)));
    for (const p of batch) p.job.onStart?.(version);
    this.stats.runningRows = rowJob.length;
    this.stats.batches++;
    // A base-model batch runs with the adapter taken off (put back before anything else runs).
    const offAdapter = !batch[0].job.adapter && policy.model.adapter ? policy.model.detachAdapter() : null;
    try {
      const gens = await generate(policy.model, prompts, {
        maxNewTokens: Math.max(...batch.map((p) => p.job.maxTokens)),
        sampling: batch[0].job.sampling,
        seed: 0,
        rowSeeds: rowJob.map((j) => batch[j].job.seed),
        rowKeys: rowChoice,
        eosIds: [policy.eosId],
        padId: policy.padId,
        onToken: (row, token, lp) => batch[rowJob[row]].job.onToken?.(rowChoice[row], token, lp),
        endRow: (row, tokens) => {
          const job = batch[rowJob[row]].job;
          if (job.signal.aborted) return "abort";
          // A stop string can only have just appeared at the end: decode a tail long enough to
          // hold the longest one (4 bytes a character, a token at least a byte), not the whole text.
          if (job.stop.length && stopAt(tok.decode(body(tokens.slice(-4 * Math.max(...job.stop.map((x) => x.length)) - 4))), job.stop) < Infinity) return "stop";
          return tokens.length >= job.maxTokens ? "length" : null;
        },
        betweenSteps: () => new Promise((r) => setImmediate(r)),
      });
      batch.forEach((p, j) => {
        if (p.job.signal.aborted) {
          this.stats.aborted++;
          return p.reject(new Error("client disconnected"));
        }
        const choices = gens
          .filter((_, r) => rowJob[r] === j)
          .map((g) => {
            let text = tok.decode(body(g.tokens));
            const cut = stopAt(text, p.job.stop);
            if (cut < Infinity) text = text.slice(0, cut);
            return { tokens: g.tokens, logprobs: g.logprobs, text, finishReason: g.finishReason };
          });
        this.stats.completed++;
        p.resolve({ choices, version });
      });
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
    } finally {
      if (offAdapter) policy.model.attachAdapter(offAdapter);
      this.stats.runningRows = 0;
    }
  }

  private async applyReload(r: Reload): Promise<void> {
    try {
      if (r.kind === "adapter") await this.swapAdapter(r);
      else if (r.kind === "weights") await this.copyWeights(r);
      else {
        this.policy.model.detachAdapter()?.dispose();
        this.lora = null;
      }
      this.reloadCount++;
      this.version = r.version ?? String(Number.isInteger(Number(this.version)) ? Number(this.version) + 1 : this.reloadCount);
      r.resolve(this.version);
    } catch (e) {
      r.reject(e as Error);
    }
  }

  private async swapAdapter(r: Reload): Promise<void> {
    const model = this.policy.model;
    if (!(await isAdapterDir(r.dir))) throw new ReloadError(`${r.dir} is not a LoRA adapter directory (no adapter_config.json)`);
    const adapter = await loadAdapter(r.dir, model.backend, model.config).catch((e: Error) => {
      throw new ReloadError(`cannot load the adapter ${r.dir}: ${e.message}`);
    });
    model.detachAdapter()?.dispose();
    model.attachAdapter(adapter);
    this.lora = { name: r.name, path: r.dir };
  }

  private async copyWeights(r: Reload): Promise<void> {
    const model = this.policy.model;
    if (await isAdapterDir(r.dir)) throw new ReloadError(`${r.dir} is a LoRA adapter (adapter_config.json): load it with /v1/load_lora_adapter`);
    const tokenizer = await Tokenizer.load(r.dir).catch(() => null);
    if (tokenizer && !sameTokenizer(tokenizer, this.policy.tokenizer)) throw new ReloadError(`${r.dir}: its tokenizer differs from the served model's`);
    const loaded = await loadCheckpoint(r.dir, model.backend).catch((e: Error) => {
      throw new ReloadError(`cannot load ${r.dir}: ${e.message}`);
    });
    try {
      const a = model.config;
      const b = loaded.config;
      for (const k of ["architecture", "vocabSize", "hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim"] as const)
        if (a[k] !== b[k]) throw new ReloadError(`${r.dir}: ${k} is ${b[k]}, the served model has ${a[k]}`);
      try {
        model.copyParamsFrom(loaded.model);
      } catch (e) {
        throw new ReloadError(`${r.dir}: ${(e as Error).message}`);
      }
    } finally {
      loaded.model.dispose();
    }
  }
}

/** Same vocabulary, same special tokens: ids mean the same text. */
function sameTokenizer(a: Tokenizer, b: Tokenizer): boolean {
  const vocab = (t: Tokenizer) => JSON.stringify([(t.tokenizerJson as Record<string, unknown>)["model"], (t.tokenizerJson as Record<string, unknown>)["added_tokens"]]);
  return a.vocabSize === b.vocabSize && vocab(a) === vocab(b);
}
