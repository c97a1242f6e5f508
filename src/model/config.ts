// Hugging Face config.json <-> ModelConfig. Anvil computes one decoder family (RMSNorm, RoPE,
// GQA attention, SwiGLU); this file accepts exactly the qwen3 / qwen2 / llama configs that map
// onto it and refuses, by field and value, anything that would silently change the math
// (rope scaling, sliding windows, MoE, other activations, extra biases).

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Architecture, ModelConfig } from "./types.js";
import { writeFileAtomic } from "../util/atomic.js";

export class ConfigError extends Error {
  override name = "ConfigError";
}

const ARCHITECTURES: Record<Architecture, string> = {
  qwen3: "Qwen3ForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  llama: "LlamaForCausalLM",
};

/** HF defaults for fields a config.json may omit (transformers' *Config constructors). */
const DEFAULT_MAX_POSITIONS: Record<Architecture, number> = { qwen3: 32768, qwen2: 32768, llama: 2048 };
const DEFAULT_RMS_EPS: Record<Architecture, number> = { qwen3: 1e-6, qwen2: 1e-6, llama: 1e-6 };
const DEFAULT_ROPE_THETA = 10000;

type Raw = Record<string, unknown>;

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === undefined) return "missing";
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + "..." : s;
  } catch {
    return String(v);
  }
}

/** Field readers: each names the file and field and says what was expected. */
class Fields {
  constructor(
    private readonly raw: Raw,
    private readonly source: string,
  ) {}

  fail(field: string, expected: string): never {
    throw new ConfigError(`${this.source}: "${field}" must be ${expected}, got ${describe(this.raw[field])}`);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  posInt(field: string, fallback?: number): number {
    const v = this.raw[field];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) this.fail(field, "a positive integer");
    return v;
  }

  posNumber(field: string, fallback?: number): number {
    const v = this.raw[field];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.fail(field, "a positive number");
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") this.fail(field, "true or false");
    return v;
  }

  tokenIdOrNull(field: string): number | null {
    const v = this.raw[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.fail(field, "a non-negative integer or null");
    return v;
  }

  tokenIds(field: string): number[] {
    const v = this.raw[field];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
        this.fail(field, "a non-negative integer, a list of them, or null");
      }
    }
    return list as number[];
  }
}

/** rope_scaling / rope_parameters: only plain RoPE ("default" type, or absent) is supported. */
function checkRope(raw: Raw, f: Fields, source: string): number {
  let theta = f.posNumber("rope_theta", DEFAULT_ROPE_THETA);
  const scaling = raw["rope_scaling"];
  if (scaling !== undefined && scaling !== null) {
    const kind = typeof scaling === "object" ? ((scaling as Raw)["rope_type"] ?? (scaling as Raw)["type"]) : undefined;
    if (kind !== "default") {
      throw new ConfigError(
        `${source}: "rope_scaling" is not supported (got ${describe(scaling)}); ` +
          `Anvil implements plain RoPE only — set "rope_scaling": null`,
      );
    }
  }
  // transformers >= 4.56 / 5 moves rope settings into rope_parameters.
  const params = raw["rope_parameters"];
  if (params !== undefined && params !== null) {
    if (typeof params !== "object" || Array.isArray(params)) f.fail("rope_parameters", "an object or null");
    const p = params as Raw;
    const kind = p["rope_type"] ?? "default";
    if (kind !== "default") {
      throw new ConfigError(
        `${source}: "rope_parameters.rope_type" = ${describe(kind)} is not supported; Anvil implements plain RoPE only`,
      );
    }
    if (p["rope_theta"] !== undefined) {
      const t = p["rope_theta"];
      if (typeof t !== "number" || !Number.isFinite(t) || t <= 0) {
        throw new ConfigError(`${source}: "rope_parameters.rope_theta" must be a positive number, got ${describe(t)}`);
      }
      theta = t;
    }
  }
  return theta;
}

function checkSlidingWindow(raw: Raw, source: string, numLayers: number): void {
  if (raw["use_sliding_window"] === true) {
    throw new ConfigError(
      `${source}: "use_sliding_window" = true is not supported (sliding_window = ${describe(raw["sliding_window"])}, ` +
        `max_window_layers = ${describe(raw["max_window_layers"])}, ${numLayers} layers); Anvil uses full causal attention`,
    );
  }
  const layerTypes = raw["layer_types"];
  if (Array.isArray(layerTypes)) {
    const i = layerTypes.findIndex((t) => t !== "full_attention");
    if (i >= 0) {
      throw new ConfigError(
        `${source}: "layer_types"[${i}] = ${describe(layerTypes[i])} is not supported; only "full_attention" layers are`,
      );
    }
  }
}

const MOE_FIELDS = ["num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size"];

/**
 * Validate a parsed config.json object and resolve it to a ModelConfig.
 * @param source file name used in error messages.
 */
export function parseConfig(json: unknown, source = "config.json"): ModelConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object at the top level, got ${describe(json)}`);
  }
  const raw = json as Raw;
  const f: Fields = new Fields(raw, source);

  const mt = raw["model_type"];
  if (typeof mt !== "string") f.fail("model_type", `one of ${Object.keys(ARCHITECTURES).join(", ")}`);
  const modelType: string = mt;
  if (!(modelType in ARCHITECTURES)) {
    throw new ConfigError(
      `${source}: "model_type" = ${describe(modelType)} is not supported; supported: ${Object.keys(ARCHITECTURES).join(", ")}`,
    );
  }
  const architecture = modelType as Architecture;

  for (const field of MOE_FIELDS) {
    const v = raw[field];
    if (typeof v === "number" && v > 0) {
      throw new ConfigError(`${source}: "${field}" = ${v} (mixture of experts) is not supported; Anvil runs dense MLPs`);
    }
  }

  const act = raw["hidden_act"] ?? "silu";
  if (act !== "silu") {
    throw new ConfigError(`${source}: "hidden_act" = ${describe(act)} is not supported; only "silu" (SwiGLU MLP) is`);
  }

  const vocabSize = f.posInt("vocab_size");
  const hiddenSize = f.posInt("hidden_size");
  const intermediateSize = f.posInt("intermediate_size");
  const numLayers = f.posInt("num_hidden_layers");
  const numHeads = f.posInt("num_attention_heads");
  const numKvHeads = f.posInt("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      `${source}: "num_attention_heads" = ${numHeads} is not divisible by "num_key_value_heads" = ${numKvHeads}`,
    );
  }
  let headDim: number;
  if (f.has("head_dim")) {
    headDim = f.posInt("head_dim");
  } else {
    if (hiddenSize % numHeads !== 0) {
      throw new ConfigError(
        `${source}: "hidden_size" = ${hiddenSize} is not divisible by "num_attention_heads" = ${numHeads} and no "head_dim" is given`,
      );
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) f.fail("head_dim", "even (RoPE rotates pairs of channels)");

  checkSlidingWindow(raw, source, numLayers);
  const ropeTheta = checkRope(raw, f, source);

  // Bias layout. Qwen2 always has q/k/v biases and none on o_proj. In Llama and Qwen3,
  // attention_bias puts a bias on q, k, v AND o_proj; the o_proj bias has no place in Anvil's
  // parameter set, so it is refused rather than dropped.
  let attentionBias: boolean;
  if (architecture === "qwen2") {
    attentionBias = true;
  } else {
    if (f.bool("attention_bias", false)) {
      throw new ConfigError(
        `${source}: "attention_bias" = true is not supported for model_type ${describe(modelType)} ` +
          `(it adds a bias to o_proj as well as q/k/v)`,
      );
    }
    attentionBias = false;
  }
  if (f.bool("mlp_bias", false)) {
    throw new ConfigError(`${source}: "mlp_bias" = true is not supported; MLP projections have no bias in Anvil`);
  }

  return {
    architecture,
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.posNumber("rms_norm_eps", DEFAULT_RMS_EPS[architecture]),
    ropeTheta,
    maxPositionEmbeddings: f.posInt("max_position_embeddings", DEFAULT_MAX_POSITIONS[architecture]),
    tieWordEmbeddings: f.bool("tie_word_embeddings", false),
    attentionBias,
    qkNorm: architecture === "qwen3",
    bosTokenId: f.tokenIdOrNull("bos_token_id"),
    eosTokenIds: f.tokenIds("eos_token_id"),
    raw: { ...raw },
  };
}

/** Read and validate `<dir>/config.json`. */
export async function loadConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (existsSync(join(dir, "adapter_config.json")))
      throw new ConfigError(`${dir} is a LoRA adapter, not a model: pass the base model as --model and this directory as --adapter`);
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: malformed JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, path);
}

/**
 * The config.json object for `c`: the original keys (unknown ones preserved) overwritten with
 * the resolved values, so a saved checkpoint loads in transformers and back here unchanged.
 */
export function configToJson(c: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c.raw };
  out["architectures"] = [ARCHITECTURES[c.architecture]];
  out["model_type"] = c.modelType;
  out["vocab_size"] = c.vocabSize;
  out["hidden_size"] = c.hiddenSize;
  out["intermediate_size"] = c.intermediateSize;
  out["num_hidden_layers"] = c.numLayers;
  out["num_attention_heads"] = c.numHeads;
  out["num_key_value_heads"] = c.numKvHeads;
  out["head_dim"] = c.headDim;
  out["hidden_act"] = "silu";
  out["rms_norm_eps"] = c.rmsNormEps;
  out["max_position_embeddings"] = c.maxPositionEmbeddings;
  out["tie_word_embeddings"] = c.tieWordEmbeddings;
  if (c.architecture !== "qwen2") out["attention_bias"] = false;
  if (c.architecture === "llama") out["mlp_bias"] = false;
  if (c.architecture !== "llama") out["use_sliding_window"] = false;
  if (out["rope_parameters"] !== undefined && out["rope_parameters"] !== null) {
    out["rope_parameters"] = { ...(out["rope_parameters"] as Raw), rope_type: "default", rope_theta: c.ropeTheta };
  } else {
    out["rope_theta"] = c.ropeTheta;
    out["rope_scaling"] = null;
  }
  out["bos_token_id"] = c.bosTokenId;
  out["eos_token_id"] = c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds.length === 0 ? null : [...c.eosTokenIds];
  return out;
}

/** Write `<dir>/config.json` atomically. */
export async function saveConfig(dir: string, c: ModelConfig): Promise<void> {
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(configToJson(c), null, 2) + "\n");
}
