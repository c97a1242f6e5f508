// `anvil init-model`: a small random Qwen3-style model with a tokenizer fitted to the task
// corpus, written as a standard Hugging Face model directory (config.json,
// generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json).

import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { configToJson, parseConfig, saveConfig } from "./config.js";
import { saveSafetensors, SINGLE_FILE, type TensorToSave } from "./safetensors.js";
import { fitTokenizer, saveTokenizerFiles, Tokenizer } from "./tokenizer.js";
import { parameterShapes, type ModelConfig } from "./types.js";
import { Rng } from "../util/rng.js";
import { writeFileAtomic } from "../util/atomic.js";
import { type AttentionInit, wireInduction } from "./induction-init.js";

export type Preset = "tiny" | "small";

export interface PresetShape {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  /** Target vocabulary; the fitted tokenizer may come out smaller on a narrow corpus. */
  vocabSize: number;
  maxPositionEmbeddings: number;
}

/**
 * tiny: ~0.9M parameters (with a 1024 vocabulary); a training step on short sequences takes
 * milliseconds on 2 CPU cores. small: ~11M parameters (with 4096), for runs that want some capacity.
 */
export const PRESETS: Record<Preset, PresetShape> = {
  tiny: {
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 32,
    intermediateSize: 384,
    vocabSize: 1024,
    maxPositionEmbeddings: 2048,
  },
  small: {
    hiddenSize: 384,
    numLayers: 6,
    numHeads: 6,
    numKvHeads: 2,
    headDim: 64,
    intermediateSize: 1024,
    vocabSize: 4096,
    maxPositionEmbeddings: 4096,
  },
};

/** The presets' SFT learning rate. With a random init, 2e-3 sat on the copy plateau (every copied
 * atom at ln(atom count) nats) for 1,500+ steps of the GraphLI sweep trace and 6e-3 left it by
 * step 800 (results/sft-probes). With the induction init, 6e-3 never left it on two seeds of four
 * (loss 1.8 at step 400), while 3e-3 left it by step 150 on the three tried
 * (results/quick-start/lr-probes). Far too high for a pretrained model: only for models made here. */
export const PRESET_SFT_LR = 3e-3;

/** Standard deviation of the normal init of every matrix (HF initializer_range). */
export const INIT_STD = 0.02;

export interface InitModelOptions {
  preset: Preset;
  /** Texts the tokenizer is fitted to (task prompts and ground-truth completions). */
  corpus: string[];
  /** Output directory (created if missing). */
  out: string;
  seed: number;
  /** Override the preset's target vocabulary size. */
  vocabSize?: number;
  /** Override parts of the preset's shape (e.g. a wider or deeper model for benchmarks). */
  shape?: Partial<PresetShape>;
  /** Replace an existing model in `out` (default false: refuse). */
  overwrite?: boolean;
  /** "induction" (default): attention starts as an induction circuit (induction-init.ts);
   * "random": every matrix N(0, INIT_STD^2), as HF does. */
  attentionInit?: AttentionInit;
  /** Phrases the tokenizer keeps whole (fitTokenizer `phrases`). */
  phrases?: readonly string[];
}

export interface InitModelResult {
  config: ModelConfig;
  tokenizer: Tokenizer;
  numParams: number;
}

/** The ModelConfig of a preset for a tokenizer with the given special ids. */
export function presetConfig(preset: Preset, vocabSize: number, eosTokenId: number, shape: Partial<PresetShape> = {}): ModelConfig {
  const p = PRESETS[preset] && { ...PRESETS[preset], ...shape };
  if (!p) throw new RangeError(`unknown preset ${JSON.stringify(preset)}; use "tiny" or "small"`);
  const raw = {
    model_type: "qwen3",
    torch_dtype: "float32",
    initializer_range: INIT_STD,
    attention_dropout: 0.0,
    use_cache: true,
    sliding_window: null,
    max_window_layers: p.numLayers,
  };
  const config: ModelConfig = {
    architecture: "qwen3",
    modelType: "qwen3",
    vocabSize,
    hiddenSize: p.hiddenSize,
    intermediateSize: p.intermediateSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    headDim: p.headDim,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    maxPositionEmbeddings: p.maxPositionEmbeddings,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: true,
    bosTokenId: null,
    eosTokenIds: [eosTokenId],
    raw,
  };
  // Round-trip through the parser: whatever init writes must load.
  return parseConfig(configToJson(config), `preset ${preset}`);
}

/** RMSNorm gains start at 1, biases at 0, everything else N(0, INIT_STD^2) — as HF does. */
export function initParameters(config: ModelConfig, rng: Rng): Map<string, TensorToSave> {
  const out = new Map<string, TensorToSave>();
  for (const [name, shape] of parameterShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    else if (name.endsWith(".bias")) data.fill(0);
    else rng.fillNormal(data, 0, INIT_STD);
    out.set(name, { data, shape });
  }
  return out;
}

const MODEL_FILES = ["config.json", SINGLE_FILE, "model.safetensors.index.json", "tokenizer.json"];

export async function initModel(opts: InitModelOptions): Promise<InitModelResult> {
  const preset = PRESETS[opts.preset] && { ...PRESETS[opts.preset], ...opts.shape };
  if (!preset) throw new RangeError(`initModel: unknown preset ${JSON.stringify(opts.preset)}; use "tiny" or "small"`);
  if (!Array.isArray(opts.corpus) || opts.corpus.length === 0) {
    throw new RangeError("initModel: corpus must be a non-empty array of strings (the tokenizer is fitted to it)");
  }
  if (!Number.isFinite(opts.seed)) throw new RangeError(`initModel: seed must be a finite number, got ${opts.seed}`);

  await mkdir(opts.out, { recursive: true });
  if (!opts.overwrite) {
    const existing = (await readdir(opts.out)).filter((f) => MODEL_FILES.includes(f));
    if (existing.length > 0) {
      throw new Error(`initModel: ${opts.out} already holds a model (${existing.join(", ")}); pass overwrite to replace it`);
    }
  }

  const files = fitTokenizer(opts.corpus, { vocabSize: opts.vocabSize ?? preset.vocabSize, modelMaxLength: preset.maxPositionEmbeddings, phrases: opts.phrases });
  const tokenizer = new Tokenizer(files.tokenizer, files.config);
  const imEnd = tokenizer.imEndId!;
  const endOfText = tokenizer.padTokenId!;
  const config = presetConfig(opts.preset, tokenizer.vocabSize, imEnd, opts.shape);

  const attentionInit = opts.attentionInit ?? "induction";
  const params = initParameters(config, new Rng(opts.seed));
  if (attentionInit === "induction") wireInduction(params, config, opts.seed);
  let numParams = 0;
  for (const { data } of params.values()) numParams += data.length;

  await saveTokenizerFiles(opts.out, files);
  await saveConfig(opts.out, config);
  const generation = {
    eos_token_id: [imEnd, endOfText],
    pad_token_id: endOfText,
    do_sample: true,
    temperature: 1.0,
  };
  await writeFileAtomic(join(opts.out, "generation_config.json"), JSON.stringify(generation, null, 2) + "\n");
  await saveSafetensors(join(opts.out, SINGLE_FILE), params, {
    dtype: "F32",
    metadata: { "anvil.init": JSON.stringify({ preset: opts.preset, seed: opts.seed, std: INIT_STD, attention: attentionInit }) },
  });
  return { config, tokenizer, numParams };
}
