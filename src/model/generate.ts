// Batched generation with a KV cache.
//
// Prompts are right-padded to the longest one and prefilled in one call (attentionDecode with
// start position 0: causal, so a row's real tokens never see its padding). Then every step
// feeds one token per row at that row's own position len[b] + step; kvWrite overwrites the
// padding garbage in the cache before any query can see it (a query at position p only sees
// cache positions 0..p). Finished rows keep being computed (the batch stays rectangular) but
// their outputs are frozen.
//
// Sampling: backend.sample with one seed per row derived from (seed, row key, step), so a
// sequence's tokens depend only on its prompt, the seed and its row key — not on which other
// prompts share the batch or on their lengths.
import type { SampleOptions, Tensor } from "../backend/backend.js";
import { InferenceScratch, KVCache, type Model } from "./model.js";

export type FinishReason = "eos" | "stop" | "length";

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
  /** Id used to pad prompts in the prefill (any valid id; never attended to). Default 0. */
  padId?: number;
  /** Called for every generated token, in order per row. */
  onToken?: (row: number, token: number, logprob: number) => void;
}

export interface Generation {
  /** Generated tokens (without the prompt), including the EOS / stop tokens that ended it. */
  tokens: number[];
  /**
   * log p(token) under the model's plain softmax at temperature 1 (no truncation), i.e. the
   * policy logprob the trainer recomputes — not the probability under the tempered, truncated
   * sampling distribution. With temperature 1 and no top-k/p/min-p filtering they coincide.
   */
  logprobs: number[];
  finishReason: FinishReason;
}

/** A 32-bit seed from (seed, key, step): murmur3-style mixing, stable across platforms. */
export function rowSeed(seed: number, key: number, step: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [key, step]) {
    let k = Math.imul(v >>> 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
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
  const padId = opts.padId ?? 0;
  const lens = prompts.map((p, i) => {
    if (p.length === 0) throw new RangeError(`prompt ${i} is empty (generation needs at least one token, e.g. BOS)`);
    return p.length;
  });
  const P = Math.max(...lens);
  const S = P + maxNewTokens;
  const eos = new Set(eosIds);
  const stops = (opts.stopSequences ?? []).filter((s) => s.length > 0);

  const cache = new KVCache(be, cfg, B, S);
  const prefill = new InferenceScratch(model, B, P);
  const decode = new InferenceScratch(model, B, 1);
  const owned: Tensor[] = [];
  const tensor = (t: Tensor) => (owned.push(t), t);
  try {
    // Prefill, then take each row's hidden state at its last prompt token.
    const ids = new Int32Array(B * P).fill(padId);
    for (let b = 0; b < B; b++) ids.set(prompts[b], b * P);
    const hiddenAll = model.forwardCached(ids, new Int32Array(B), cache, prefill);
    const lastIdx = tensor(be.upload(Int32Array.from(lens, (n, b) => b * P + n - 1), [B]));
    const last = tensor(be.zeros([B, cfg.hiddenSize]));
    be.gatherRows(last, hiddenAll, lastIdx);
    const logits = tensor(be.zeros([B, cfg.vocabSize]));
    be.matmul(logits, last, model.lmHead(), { transB: true });
    prefill.dispose();

    const sampled = tensor(be.zeros([B], "i32"));
    const logprob = tensor(be.zeros([B]));
    const entropy = tensor(be.zeros([B]));
    const seeds = new Uint32Array(B);
    const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finishReason: "length" as FinishReason }));
    const done = new Array<boolean>(B).fill(false);
    const feed = new Int32Array(B);
    const start = new Int32Array(B);
    for (let step = 0; step < maxNewTokens; step++) {
      for (let b = 0; b < B; b++) seeds[b] = rowSeed(opts.seed, rowKeys[b], step);
      be.sample(sampled, logits, seeds, sampling);
      be.logprobFromLogits(logprob, entropy, logits, sampled, 1);
      const tok = (await be.read(sampled)) as Int32Array;
      const lp = (await be.read(logprob)) as Float32Array;
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        const g = out[b];
        g.tokens.push(tok[b]);
        g.logprobs.push(lp[b]);
        opts.onToken?.(b, tok[b], lp[b]);
        if (eos.has(tok[b])) {
          g.finishReason = "eos";
          done[b] = true;
        } else if (stops.some((s) => endsWith(g.tokens, s))) {
          g.finishReason = "stop";
          done[b] = true;
        } else if (g.tokens.length >= maxNewTokens) {
          done[b] = true;
        }
      }
      if (done.every(Boolean)) break;
      for (let b = 0; b < B; b++) {
        // Finished rows are fed their last token; their results are ignored.
        feed[b] = tok[b];
        start[b] = lens[b] + step;
      }
      const h = model.forwardCached(feed, start, cache, decode);
      be.matmul(logits, h, model.lmHead(), { transB: true });
    }
    return out;
  } finally {
    for (const t of owned) t.dispose();
    prefill.dispose();
    decode.dispose();
    cache.dispose();
  }
}
