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
import type { SampleOptions } from "../backend/backend.js";
import { loadCheckpoint } from "../model/checkpoint.js";
import { generate, type FinishReason } from "../model/generate.js";
import { Tokenizer } from "../model/tokenizer.js";
import type { Policy } from "../rl/policy.js";

export interface ServeJob {
  /** Prompt token ids (chat template already applied for chat requests). */
  prompt: number[];
  /** Completions to draw for this prompt. */
  n: number;
  maxTokens: number;
  sampling: SampleOptions;
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
  dir: string;
  version: string | undefined;
  resolve: (version: string) => void;
  reject: (e: Error) => void;
}

const samplingKey = (s: SampleOptions) => `${s.greedy ? 1 : 0}|${s.temperature}|${s.topK}|${s.topP}|${s.minP}`;

export class ServeEngine {
  private queue: Pending[] = [];
  private reloads: Reload[] = [];
  private running = false;
  private reloadCount = 0;
  /** Rows being decoded now, and jobs ended early because their client left. */
  readonly stats = { runningRows: 0, aborted: 0, completed: 0, batches: 0 };

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
    return new Promise((resolve, reject) => {
      this.reloads.push({ dir, version, resolve, reject });
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
    const key = samplingKey(this.queue[0].job.sampling);
    const batch: Pending[] = [];
    let rows = 0;
    this.queue = this.queue.filter((p) => {
      const fits = batch.length === 0 || rows + p.job.n <= this.maxBatch;
      if (samplingKey(p.job.sampling) !== key || !fits) return true;
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
      this.stats.runningRows = 0;
    }
  }

  private async applyReload(r: Reload): Promise<void> {
    const model = this.policy.model;
    try {
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
      this.reloadCount++;
      this.version = r.version ?? String(Number.isInteger(Number(this.version)) ? Number(this.version) + 1 : this.reloadCount);
      r.resolve(this.version);
    } catch (e) {
      r.reject(e as Error);
    }
  }
}

/** Same vocabulary, same special tokens: ids mean the same text. */
function sameTokenizer(a: Tokenizer, b: Tokenizer): boolean {
  const vocab = (t: Tokenizer) => JSON.stringify([(t.tokenizerJson as Record<string, unknown>)["model"], (t.tokenizerJson as Record<string, unknown>)["added_tokens"]]);
  return a.vocabSize === b.vocabSize && vocab(a) === vocab(b);
}
