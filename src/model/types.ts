// The decoder configuration Anvil computes with, resolved from a Hugging Face config.json
// (src/model/config.ts parses and validates; src/model/model.ts consumes).

export type Architecture = "qwen3" | "qwen2" | "llama";

export interface ModelConfig {
  architecture: Architecture;
  /** HF `model_type`, kept so checkpoints are written back unchanged. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Qwen2: bias on q/k/v projections. */
  attentionBias: boolean;
  /** Qwen3: RMSNorm on q and k per head, before RoPE. */
  qkNorm: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The original config.json object (unknown keys preserved on save). */
  raw: Record<string, unknown>;
}

/** HF parameter names of one decoder layer, without the `model.layers.{i}.` prefix. */
export const LAYER_PARAMS = {
  inputNorm: "input_layernorm.weight",
  q: "self_attn.q_proj.weight",
  k: "self_attn.k_proj.weight",
  v: "self_attn.v_proj.weight",
  o: "self_attn.o_proj.weight",
  qBias: "self_attn.q_proj.bias",
  kBias: "self_attn.k_proj.bias",
  vBias: "self_attn.v_proj.bias",
  qNorm: "self_attn.q_norm.weight",
  kNorm: "self_attn.k_norm.weight",
  postNorm: "post_attention_layernorm.weight",
  gate: "mlp.gate_proj.weight",
  up: "mlp.up_proj.weight",
  down: "mlp.down_proj.weight",
} as const;

export const EMBED_PARAM = "model.embed_tokens.weight";
export const FINAL_NORM_PARAM = "model.norm.weight";
export const LM_HEAD_PARAM = "lm_head.weight";

/** Shapes of every parameter, in HF names and layouts (nn.Linear weights are (out, in)). */
export function parameterShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  m.set(EMBED_PARAM, [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + LAYER_PARAMS.inputNorm, [c.hiddenSize]);
    m.set(p + LAYER_PARAMS.q, [qDim, c.hiddenSize]);
    m.set(p + LAYER_PARAMS.k, [kvDim, c.hiddenSize]);
    m.set(p + LAYER_PARAMS.v, [kvDim, c.hiddenSize]);
    m.set(p + LAYER_PARAMS.o, [c.hiddenSize, qDim]);
    if (c.attentionBias) {
      m.set(p + LAYER_PARAMS.qBias, [qDim]);
      m.set(p + LAYER_PARAMS.kBias, [kvDim]);
      m.set(p + LAYER_PARAMS.vBias, [kvDim]);
    }
    if (c.qkNorm) {
      m.set(p + LAYER_PARAMS.qNorm, [c.headDim]);
      m.set(p + LAYER_PARAMS.kNorm, [c.headDim]);
    }
    m.set(p + LAYER_PARAMS.postNorm, [c.hiddenSize]);
    m.set(p + LAYER_PARAMS.gate, [c.intermediateSize, c.hiddenSize]);
    m.set(p + LAYER_PARAMS.up, [c.intermediateSize, c.hiddenSize]);
    m.set(p + LAYER_PARAMS.down, [c.hiddenSize, c.intermediateSize]);
  }
  m.set(FINAL_NORM_PARAM, [c.hiddenSize]);
  if (!c.tieWordEmbeddings) m.set(LM_HEAD_PARAM, [c.vocabSize, c.hiddenSize]);
  return m;
}
