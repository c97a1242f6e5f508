// The policy as the trainer sees it: a model, its tokenizer and optimizer, plus the text
// plumbing (chat template, EOS) so the RL code deals in strings and token ids only.
import type { SampleOptions } from "../backend/backend.js";
import { generate, type FinishReason } from "../model/generate.js";
import type { Backend } from "../backend/backend.js";
import { loadCheckpoint } from "../model/checkpoint.js";
import type { FrozenDtype, Model } from "../model/model.js";
import { loadAdapter } from "../model/peft.js";
import type { AdamW } from "../model/optim.js";
import { Tokenizer } from "../model/tokenizer.js";

export interface PolicyGeneration {
  tokens: number[];
  /** Per-token log-probs of the distribution sampled (see Generation.logprobs); empty when
   * unknown (a server that dropped the EOS it stopped on): truncated IS then weighs the row 1. */
  logprobs: number[];
  /** Decoded completion without the closing EOS. */
  text: string;
  finishReason: FinishReason;
}

export interface PolicyGenerateOptions {
  maxNewTokens: number;
  sampling: SampleOptions;
  seed: number;
  /** Stable per-row keys for seed derivation (default: the index in `prompts`). */
  rowKeys?: number[];
}

/** Where rollouts come from: the policy itself, or a fleet of inference servers (rollout-fleet.ts). */
export interface RolloutSource {
  generate(prompts: string[], opts: PolicyGenerateOptions): Promise<PolicyGeneration[]>;
}

export class Policy implements RolloutSource {
  private promptCache = new Map<string, number[]>();
  readonly eosId: number;
  readonly padId: number;

  constructor(
    readonly model: Model,
    readonly tokenizer: Tokenizer,
    readonly optimizer: AdamW | null,
    /** Sequences per forward/backward pass (bounds activation memory). */
    readonly microBatch = 16,
    /** Sequences decoded together. */
    readonly generateBatch = 64,
  ) {
    this.eosId = completionEndId(tokenizer);
    this.padId = tokenizer.padTokenId ?? this.eosId;
  }

  /**
   * A model directory (HF config.json + safetensors + tokenizer.json) for inference, with a PEFT
   * LoRA adapter directory applied when `adapter` is given (the tokenizer is the model's).
   */
  static async load(dir: string, backend: Backend, opts: { adapter?: string; frozenDtype?: FrozenDtype } = {}): Promise<Policy> {
    const tokenizer = await Tokenizer.load(dir);
    const { model } = await loadCheckpoint(dir, backend, { frozenDtype: opts.frozenDtype });
    try {
      if (opts.adapter) model.attachAdapter(await loadAdapter(opts.adapter, backend, model.config));
    } catch (e) {
      model.dispose();
      throw e;
    }
    return new Policy(model, tokenizer, null);
  }

  /** Prompt ids with the chat template applied and the assistant turn opened. */
  encodePrompt(prompt: string): number[] {
    let ids = this.promptCache.get(prompt);
    if (!ids) {
      ids = encodeChatPrompt(this.tokenizer, prompt);
      if (this.promptCache.size > 50_000) this.promptCache.clear();
      this.promptCache.set(prompt, ids);
    }
    return ids;
  }

  /** Completion ids as the model should produce them: text then EOS. */
  encodeCompletion(text: string): number[] {
    return encodeCompletion(this.tokenizer, text);
  }

  decodeCompletion(tokens: number[]): string {
    const body = tokens.length && tokens[tokens.length - 1] === this.eosId ? tokens.slice(0, -1) : tokens;
    return this.tokenizer.decode(body);
  }

  async generate(prompts: string[], opts: PolicyGenerateOptions): Promise<PolicyGeneration[]> {
    const out: PolicyGeneration[] = [];
    const limit = this.model.config.maxPositionEmbeddings;
    for (let s = 0; s < prompts.length; s += this.generateBatch) {
      const chunk = prompts.slice(s, s + this.generateBatch).map((p) => this.encodePrompt(p));
      const longest = Math.max(...chunk.map((c) => c.length));
      const maxNewTokens = Math.max(1, Math.min(opts.maxNewTokens, limit - longest));
      const gens = await generate(this.model, chunk, {
        maxNewTokens,
        sampling: opts.sampling,
        seed: opts.seed,
        eosIds: [this.eosId],
        padId: this.padId,
        rowKeys: chunk.map((_, i) => opts.rowKeys?.[s + i] ?? s + i),
      });
      for (const g of gens) out.push({ tokens: g.tokens, logprobs: g.logprobs, text: this.decodeCompletion(g.tokens), finishReason: g.finishReason });
    }
    return out;
  }
}

/** The token that ends a completion: <|im_end|> for chat models, else the EOS token. */
export function completionEndId(tokenizer: Tokenizer): number {
  const eos = tokenizer.imEndId ?? tokenizer.eosTokenId;
  if (eos === null) throw new Error("the tokenizer has no <|im_end|> or eos_token: cannot end completions");
  return eos;
}

/** Completion ids as the policy should produce them: the text, then the end token. */
export function encodeCompletion(tokenizer: Tokenizer, text: string): number[] {
  return [...tokenizer.encode(text), completionEndId(tokenizer)];
}

/** Prompt ids as the policy sees them: the chat template applied, the assistant turn opened. */
export function encodeChatPrompt(tokenizer: Tokenizer, prompt: string): number[] {
  const text = tokenizer.hasChatTemplate ? tokenizer.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true }) : prompt;
  return tokenizer.encode(text);
}
