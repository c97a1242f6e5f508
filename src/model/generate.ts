// Batched generation with a KV cache.
//
// Prompts are right-padded to the longest one and prefilled in one call (attentionDecode with
// start position 0: causal, so a row's real tokens never see its padding). Then every step
// feeds one token per row at that row's own position len[b] + step; kvWrite overwrites the
// padding garbage in the cache before any query can see it (a query at position p only sees
// cache positions 0..p). Finished rows are frozen; once half the batch is finished it is
// compacted to the live rows (KV cache rows gathered), so long tails cost only what they use.
//
// Sampling: backend.sample with one seed per row derived from (seed, row key, step), so a
// sequence's tokens depend only on its prompt, the seed and its row key — not on which other
// prompts share the batch or on their lengths.
import type { SampleOptions, Tensor } from "../backend/backend.js";
import { InferenceScratch, KVCache, type Model } from "./model.js";
import { keptLogMass, truncates } from "./sampling-dist.js";
import { fmix32, murmurRound } from "../util/seed.js";

/** "abort": ended by the caller's endRow hook (e.g. a server whose client went away). */
export type FinishReason = "eos" | "stop" | "length" | "abort";

export interface GenerateOptions {
  /** Tokens to generate at most per sequence (>= 1). */
  maxNewTokens: number;
  sampling: SampleOptions;
  /** Base seed; with the row key and step it gives each row's sampling seed. */
  seed: number;
  /** Token ids that end a sequence (the EOS token is kept in the output). */
  eosIds: number[];
  /** Token sequences that end a sequence when the output ends with one (kept in the output). */
  stopSequences?: number[][];
  /**
   * Per-row keys for seed derivation (default: the row index). Give each sequence a stable key
   * (e.g. its index in the whole rollout) to reproduce it in any batch.
   */
  rowKeys?: number[];
  /** Per-row base seeds replacing `seed` (a server batching requests that each carry a seed). */
  rowSeeds?: number[];
  /** Id used to pad prompts in the prefill (any valid id; never attended to). Default 0. */
  padId?: number;
  /**
   * Drop finished rows from the batch (gathering the KV cache) once half of them are done
   * (default true). Results are the same either way; it only saves compute.
   */
  compact?: boolean;
  /** Prefill identical prompts once and share their KV cache rows (default true; same results). */
  dedupePrompts?: boolean;
  /** Called for every generated token, in order per row. */
  onToken?: (row: number, token: number, logprob: number) => void;
  /**
   * Called after each token a row generates (once the built-in EOS / stop / length checks let
   * it go on): a finish reason ends the row there. A server uses it for per-request token
   * limits, stop strings and clients that disconnected; ended rows are compacted away.
   */
  endRow?: (row: number, tokens: readonly number[]) => FinishReason | null;
  /** Awaited between decode steps, so a server's event loop can accept requests meanwhile. */
  betweenSteps?: () => Promise<void>;
}

export interface Generation {
  /** Generated tokens (without the prompt), including the EOS / stop tokens that ended it. */
  tokens: number[];
  /**
   * log q(token) under the distribution the token was drawn from: softmax(logits / T),
   * renormalised over the tokens top-k / top-p / min-p kept (sampling-dist.ts); under greedy
   * decoding, the plain softmax at temperature 1. Truncated importance sampling compares it
   * with the trainer's log-prob at the same temperature, so the weight p/q corrects exactly
   * for the truncation.
   */
  logprobs: number[];
  finishReason: FinishReason;
}

/** A 32-bit seed from (seed, key, step): murmur3-style mixing, stable across platforms. */
export function rowSeed(seed: number, key: number, step: number): number {
  return fmix32(murmurRound(murmurRound((seed ^ 0x9e3779b9) >>> 0, key >>> 0), step >>> 0));
}

function endsWith(tokens: number[], seq: number[]): boolean {
  if (seq.length === 0 || seq.length > tokens.length) return false;
  const off = tokens.length - seq.length;
  for (let i = 0; i < seq.length; i++) if (tokens[off + i] !== seq[i]) return false;
  return true;
}

export async function generate(model: Model, prompts: number[][], opts: GenerateOptions): Promise<Generation[]> {
  const be = model.backend;
  const cfg = model.config;
  const B = prompts.length;
  const { maxNewTokens, sampling, eosIds } = opts;
  if (B === 0) return [];
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new RangeError(`maxNewTokens must be an integer >= 1, got ${maxNewTokens}`);
  if (!Number.isInteger(opts.seed)) throw new TypeError(`seed must be an integer, got ${opts.seed}`);
  const rowKeys = opts.rowKeys ?? prompts.map((_, i) => i);
  if (rowKeys.length !== B) throw new RangeError(`rowKeys has ${rowKeys.length} entries, expected one per prompt (${B})`);
  const baseSeeds = opts.rowSeeds ?? prompts.map(() => opts.seed);
  if (baseSeeds.length !== B || !baseSeeds.every(Number.isInteger)) throw new RangeError(`rowSeeds must hold one integer per prompt (${B})`);
  const padId = opts.padId ?? 0;
  const lens = prompts.map((p, i) => {
    if (p.length === 0) throw new RangeError(`prompt ${i} is empty (generation needs at least one token, e.g. BOS)`);
    return p.length;
  });
  const P = Math.max(...lens);
  const S = P + maxNewTokens;
  const eos = new Set(eosIds);
  // Recorded log-probs are those of the sampling distribution (see Generation.logprobs).
  const temperature = sampling.greedy || sampling.temperature <= 0 ? 1 : sampling.temperature;
  const truncated = truncates(sampling, cfg.vocabSize);
  const stops = (opts.stopSequences ?? []).filter((s) => s.length > 0);

  // The live batch: slot i decodes original row rows[i]. When at least half the slots are
  // finished, the batch is compacted (cache rows gathered) so finished rows stop costing compute.
  interface Batch {
    rows: number[];
    cache: KVCache;
    decode: InferenceScratch;
    logits: Tensor; // (n, V)
    sampled: Tensor; // (n) i32
    logprob: Tensor; // (n)
    entropy: Tensor; // (n)
  }
  const newBatch = (rows: number[], cache: KVCache): Batch => ({
    rows,
    cache,
    decode: new InferenceScratch(model, rows.length, 1),
    logits: be.zeros([rows.length, cfg.vocabSize]),
    sampled: be.zeros([rows.length], "i32"),
    logprob: be.zeros([rows.length]),
    entropy: be.zeros([rows.length]),
  });
  const disposeBatch = (bt: Batch): void => {
    bt.cache.dispose();
    bt.decode.dispose();
    for (const t of [bt.logits, bt.sampled, bt.logprob, bt.entropy]) t.dispose();
  };
  /** A new batch whose slot i is slot keep[i] of bt (repeats allowed), decoding rows[i]. */
  const gatherBatch = (bt: Batch, keep: number[], rows: number[]): Batch => {
    const idx = be.upload(Int32Array.from(keep), [keep.length]);
    const cache = new KVCache(be, cfg, keep.length, S);
    const row = S * cfg.numKvHeads * cfg.headDim;
    for (let l = 0; l < cfg.numLayers; l++) {
      for (const [dst, src] of [[cache.k[l], bt.cache.k[l]], [cache.v[l], bt.cache.v[l]]]) {
        be.gatherRows(be.view(dst, [keep.length, row]), be.view(src, [bt.rows.length, row]), idx);
      }
    }
    const next = newBatch(rows, cache);
    be.gatherRows(next.logits, bt.logits, idx);
    idx.dispose();
    disposeBatch(bt);
    return next;
  };

  // GRPO samples G completions per prompt: prefill each distinct prompt once, then copy its
  // cache rows and logits to every row that shares it.
  const slotOf: number[] = [];
  const unique: number[] = [];
  const seen = new Map<string, number>();
  for (let b = 0; b < B; b++) {
    const key = (opts.dedupePrompts ?? true) ? prompts[b].join(",") : String(b);
    let u = seen.get(key);
    if (u === undefined) {
      u = unique.length;
      seen.set(key, u);
      unique.push(b);
    }
    slotOf.push(u);
  }
  const U = unique.length;
  let batch = newBatch(unique, new KVCache(be, cfg, U, S));
  const prefill = new InferenceScratch(model, U, P);
  try {
    // Prefill, then take each row's hidden state at its last prompt token.
    const ids = new Int32Array(U * P).fill(padId);
    unique.forEach((b, u) => ids.set(prompts[b], u * P));
    const hiddenAll = model.forwardCached(ids, new Int32Array(U), batch.cache, prefill);
    const lastIdx = be.upload(Int32Array.from(unique, (b, u) => u * P + lens[b] - 1), [U]);
    const last = be.zeros([U, cfg.hiddenSize]);
    be.gatherRows(last, hiddenAll, lastIdx);
    be.matmul(batch.logits, last, model.lmHead(), { transB: true });
    for (const t of [lastIdx, last]) t.dispose();
    prefill.dispose();
    if (U < B) batch = gatherBatch(batch, slotOf, prompts.map((_, b) => b));

    const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finishReason: "length" as FinishReason }));
    const done = new Array<boolean>(B).fill(false);
    for (let step = 0; step < maxNewTokens; step++) {
      const n = batch.rows.length;
      const seeds = Uint32Array.from(batch.rows, (r) => rowSeed(baseSeeds[r], rowKeys[r], step));
      be.sample(batch.sampled, batch.logits, seeds, sampling);
      be.logprobFromLogits(batch.logprob, batch.entropy, batch.logits, batch.sampled, temperature);
      const tok = (await be.read(batch.sampled)) as Int32Array;
      const lp = (await be.read(batch.logprob)) as Float32Array;
      if (truncated) {
        const logits = (await be.read(batch.logits)) as Float32Array;
        const V = cfg.vocabSize;
        for (let i = 0; i < n; i++) lp[i] -= keptLogMass(logits.subarray(i * V, (i + 1) * V), sampling);
      }
      for (let i = 0; i < n; i++) {
        const b = batch.rows[i];
        if (done[b]) continue;
        const g = out[b];
        g.tokens.push(tok[i]);
        g.logprobs.push(lp[i]);
        opts.onToken?.(b, tok[i], lp[i]);
        if (eos.has(tok[i])) {
          g.finishReason = "eos";
          done[b] = true;
        } else if (stops.some((st) => endsWith(g.tokens, st))) {
          g.finishReason = "stop";
          done[b] = true;
        } else if (g.tokens.length >= maxNewTokens) {
          done[b] = true;
        } else {
          const reason = opts.endRow?.(b, g.tokens) ?? null;
          if (reason) {
            g.finishReason = reason;
            done[b] = true;
          }
        }
      }
      if (opts.betweenSteps) {
        await opts.betweenSteps();
        // Rows the hook's callers gave up on (e.g. a disconnected client) end before the next step.
        for (const b of batch.rows) {
          if (done[b]) continue;
          const reason = opts.endRow?.(b, out[b].tokens) ?? null;
          if (reason) [out[b].finishReason, done[b]] = [reason, true];
        }
      }
      const live = [...batch.rows.keys()].filter((i) => !done[batch.rows[i]]);
      if (live.length === 0) break;
      let feedTok = tok;
      if ((opts.compact ?? true) && live.length <= n / 2) {
        batch = gatherBatch(batch, live, live.map((i) => batch.rows[i]));
        feedTok = Int32Array.from(live, (i) => tok[i]);
      }
      // Finished rows still in the batch are fed their last token; their results are ignored.
      const start = Int32Array.from(batch.rows, (r) => lens[r] + step);
      const h = model.forwardCached(feedTok, start, batch.cache, batch.decode);
      be.matmul(batch.logits, h, model.lmHead(), { transB: true });
    }
    return out;
  } finally {
    prefill.dispose();
    disposeBatch(batch);
  }
}
