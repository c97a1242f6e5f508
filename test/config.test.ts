import { describe, expect, it } from "vitest";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configToJson, loadConfig, parseConfig, saveConfig } from "../src/model/config.js";
import { parameterShapes } from "../src/model/types.js";

// Abridged from the published config.json files.
const QWEN3_06B = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: "qwen3",
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: "silu",
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: "qwen2",
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const LLAMA = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  vocab_size: 128256,
};

function withChange(base: Record<string, unknown>, change: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base, ...change };
  for (const [k, v] of Object.entries(change)) if (v === undefined) delete out[k];
  return out;
}

describe("parseConfig", () => {
  it("parses Qwen3 (head_dim field, q/k norm, tied)", () => {
    const c = parseConfig(QWEN3_06B);
    expect(c).toMatchObject({
      architecture: "qwen3",
      vocabSize: 151936,
      hiddenSize: 1024,
      intermediateSize: 3072,
      numLayers: 28,
      numHeads: 16,
      numKvHeads: 8,
      headDim: 128,
      ropeTheta: 1e6,
      tieWordEmbeddings: true,
      attentionBias: false,
      qkNorm: true,
      bosTokenId: 151643,
      eosTokenIds: [151645],
    });
    const shapes = parameterShapes(c);
    expect(shapes.get("model.layers.0.self_attn.q_proj.weight")).toEqual([2048, 1024]);
    expect(shapes.get("model.layers.0.self_attn.q_norm.weight")).toEqual([128]);
    expect(shapes.has("lm_head.weight")).toBe(false);
  });

  it("parses Qwen2 (qkv bias, no qk norm, head_dim derived, sliding_window set but disabled)", () => {
    const c = parseConfig(QWEN25_05B);
    expect(c).toMatchObject({ architecture: "qwen2", headDim: 64, attentionBias: true, qkNorm: false, numKvHeads: 2 });
    expect(parameterShapes(c).get("model.layers.3.self_attn.k_proj.bias")).toEqual([128]);
  });

  it("parses Llama (eos list, defaults)", () => {
    const c = parseConfig(LLAMA);
    expect(c).toMatchObject({ architecture: "llama", headDim: 64, attentionBias: false, qkNorm: false, rmsNormEps: 1e-5 });
    expect(c.eosTokenIds).toEqual([128001, 128008, 128009]);
    const minimal = parseConfig({
      model_type: "llama",
      vocab_size: 100,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
    });
    expect(minimal).toMatchObject({ numKvHeads: 4, headDim: 16, ropeTheta: 10000, tieWordEmbeddings: false, bosTokenId: null, eosTokenIds: [] });
  });

  it("accepts transformers-5 rope_parameters with the default type", () => {
    const c = parseConfig(withChange(QWEN3_06B, { rope_theta: undefined, rope_scaling: undefined, rope_parameters: { rope_type: "default", rope_theta: 5e5 } }));
    expect(c.ropeTheta).toBe(5e5);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["rope_scaling yarn", withChange(QWEN3_06B, { rope_scaling: { rope_type: "yarn", factor: 4 } }), /"rope_scaling".*yarn/],
    ["rope_scaling llama3", withChange(LLAMA, { rope_scaling: { rope_type: "llama3", factor: 32 } }), /"rope_scaling".*llama3/],
    ["rope_parameters linear", withChange(QWEN3_06B, { rope_parameters: { rope_type: "linear", factor: 2 } }), /rope_type.*linear/],
    ["use_sliding_window", withChange(QWEN25_05B, { use_sliding_window: true }), /"use_sliding_window" = true.*32768/],
    ["layer_types sliding", withChange(QWEN3_06B, { layer_types: ["full_attention", "sliding_attention"] }), /"layer_types"\[1\].*sliding_attention/],
    ["num_experts", withChange(QWEN3_06B, { num_experts: 128 }), /"num_experts" = 128/],
    ["num_local_experts", withChange(LLAMA, { num_local_experts: 8 }), /"num_local_experts" = 8/],
    ["hidden_act gelu", withChange(LLAMA, { hidden_act: "gelu" }), /"hidden_act" = "gelu"/],
    ["missing hidden_size", withChange(QWEN3_06B, { hidden_size: undefined }), /"hidden_size" must be a positive integer, got missing/],
    ["string vocab_size", withChange(QWEN3_06B, { vocab_size: "151936" }), /"vocab_size" must be a positive integer, got "151936"/],
    ["fractional layers", withChange(QWEN3_06B, { num_hidden_layers: 2.5 }), /"num_hidden_layers".*2.5/],
    ["heads not divisible", withChange(QWEN3_06B, { num_key_value_heads: 3 }), /"num_attention_heads" = 16 is not divisible by "num_key_value_heads" = 3/],
    ["model_type mistral", withChange(LLAMA, { model_type: "mistral" }), /"model_type" = "mistral" is not supported/],
    ["model_type missing", withChange(LLAMA, { model_type: undefined }), /"model_type" must be/],
    ["llama attention_bias", withChange(LLAMA, { attention_bias: true }), /"attention_bias" = true.*o_proj/],
    ["llama mlp_bias", withChange(LLAMA, { mlp_bias: true }), /"mlp_bias" = true/],
    ["tie not boolean", withChange(LLAMA, { tie_word_embeddings: "yes" }), /"tie_word_embeddings" must be true or false/],
    ["eos not int", withChange(LLAMA, { eos_token_id: [1, "2"] }), /"eos_token_id"/],
    ["head_dim derived not integral", withChange(QWEN25_05B, { num_attention_heads: 10, num_key_value_heads: 2, hidden_size: 895 }), /"hidden_size" = 895 is not divisible/],
  ];
  for (const [label, json, message] of bad) {
    it(`rejects ${label}`, () => {
      expect(() => parseConfig(json, "x/config.json")).toThrow(message);
      expect(() => parseConfig(json, "x/config.json")).toThrow(/x\/config\.json/);
    });
  }

  it("rejects non-objects", () => {
    expect(() => parseConfig([1, 2])).toThrow(/config\.json: expected a JSON object/);
    expect(() => parseConfig(null)).toThrow(/expected a JSON object/);
  });
});

describe("loadConfig / configToJson", () => {
  it("names the file on malformed JSON", async () => {
    const dir = await mkdtemp(join(tmpdir(), "anvil-config-"));
    try {
      await writeFile(join(dir, "config.json"), '{"model_type": "qwen3",');
      await expect(loadConfig(dir)).rejects.toThrow(new RegExp(`${dir}/config.json: malformed JSON`));
      await expect(loadConfig(join(dir, "nope"))).rejects.toThrow(/cannot read .*nope\/config\.json/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("round-trips every architecture through configToJson and disk, preserving unknown keys", async () => {
    const dir = await mkdtemp(join(tmpdir(), "anvil-config-"));
    try {
      for (const raw of [QWEN3_06B, QWEN25_05B, LLAMA]) {
        const c = parseConfig({ ...raw, custom_key: { a: 1 } });
        const json = configToJson(c);
        expect(json["custom_key"]).toEqual({ a: 1 });
        expect(json["torch_dtype"] ?? null).toEqual((raw as Record<string, unknown>)["torch_dtype"] ?? null);
        await saveConfig(dir, c);
        const back = await loadConfig(dir);
        const { raw: _r1, ...a } = c;
        const { raw: _r2, ...b } = back;
        expect(b).toEqual(a);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
