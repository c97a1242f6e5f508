// LoRA adapters (Hu et al. 2021) on the decoder's projections, with PEFT's formula and names:
//   y = x @ W^T + scale * (x @ A^T) @ B^T,   A (r, in), B (out, r), scale = alpha / r
//   (alpha / sqrt(r) under rsLoRA). B starts at zero, so a fresh adapter leaves the model
//   unchanged; A starts kaiming-uniform(a = sqrt(5)) like PEFT's, i.e. U(-1/sqrt(in), 1/sqrt(in)).
// Only A and B are trained; the base weights stay frozen (Model.backward skips their gradients
// while an adapter is attached). The adapter's matmuls are ordinary backend matmuls, so it runs
// on every backend. Dropout is not implemented (PEFT's lora_dropout = 0).
//
// Parameters are kept under PEFT's saved names
//   base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight   (r, in)
//   base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight   (out, r)
// so an adapter round-trips through adapter_model.safetensors unchanged (src/model/peft.ts).
import type { Backend, Tensor } from "../backend/backend.js";
import { Rng } from "../util/rng.js";
import type { ModelConfig } from "./types.js";

/** The projections an adapter can target, by short name, and their HF module paths. */
export const LORA_MODULES = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;
export type LoraModule = keyof typeof LORA_MODULES;
export const ALL_LORA_MODULES = Object.keys(LORA_MODULES) as LoraModule[];

export interface LoraConfig {
  /** Rank r (>= 1). */
  r: number;
  /** Scaling numerator: the update is (alpha / r) * B @ A. */
  alpha: number;
  /** Projections carrying an adapter, in every layer listed by `layers`. */
  targets: LoraModule[];
  /** rsLoRA (Kalajdzievski 2023): scale alpha / sqrt(r) instead of alpha / r. */
  rslora?: boolean;
  /** Layers carrying adapters (default: all), PEFT's layers_to_transform. */
  layers?: number[] | null;
}

/** One projection's adapter: A (r, in), B (out, r). */
export interface LoraPair {
  a: Tensor;
  b: Tensor;
  /** PEFT names of A and B. */
  aName: string;
  bName: string;
}

/** PEFT's saved name prefix of layer l's projection `mod`. */
export function peftModulePath(l: number, mod: LoraModule): string {
  return `base_model.model.model.layers.${l}.${LORA_MODULES[mod]}`;
}

/** (out, in) of a projection. */
export function projectionShape(c: ModelConfig, mod: LoraModule): [number, number] {
  const qD = c.numHeads * c.headDim;
  const kvD = c.numKvHeads * c.headDim;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const shapes: Record<LoraModule, [number, number]> = { q: [qD, H], k: [kvD, H], v: [kvD, H], o: [H, qD], gate: [I, H], up: [I, H], down: [H, I] };
  return shapes[mod];
}

/**
 * Parses a target list: short names (q, gate), HF module names (q_proj, gate_proj) or
 * "all-linear", comma separated or as an array.
 */
export function parseLoraTargets(spec: string | string[]): LoraModule[] {
  const items = (Array.isArray(spec) ? spec : spec.split(",")).map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0] === "all-linear") return [...ALL_LORA_MODULES];
  const out = new Set<LoraModule>();
  for (const item of items) {
    const short = item.replace(/_proj$/, "") as LoraModule;
    if (!(short in LORA_MODULES)) throw new RangeError(`LoRA target "${item}" is not one of ${ALL_LORA_MODULES.join(", ")} (or q_proj ... down_proj, or all-linear)`);
    out.add(short);
  }
  if (out.size === 0) throw new RangeError("LoRA needs at least one target module (e.g. q,k,v,o,gate,up,down)");
  return ALL_LORA_MODULES.filter((m) => out.has(m));
}

export function checkLoraConfig(c: LoraConfig, model: ModelConfig): void {
  if (!Number.isInteger(c.r) || c.r < 1) throw new RangeError(`LoRA rank r must be an integer >= 1, got ${c.r}`);
  if (!(Number.isFinite(c.alpha) && c.alpha > 0)) throw new RangeError(`LoRA alpha must be a number > 0, got ${c.alpha}`);
  if (c.targets.length === 0) throw new RangeError("LoRA needs at least one target module");
  for (const l of c.layers ?? [])
    if (!Number.isInteger(l) || l < 0 || l >= model.numLayers) throw new RangeError(`LoRA layer ${l} is outside 0..${model.numLayers - 1}`);
}

export class LoraAdapter {
  /** A and B under their PEFT names: what an optimizer trains and a checkpoint saves. */
  readonly params = new Map<string, Tensor>();
  /** Gradients, same names; allocated on first use, accumulated into (+=). */
  readonly grads = new Map<string, Tensor>();
  /** layers[l][mod]: the adapter on layer l's projection, if any. */
  readonly layers: Partial<Record<LoraModule, LoraPair>>[] = [];
  /** The factor on B @ A. */
  readonly scale: number;

  private constructor(
    readonly backend: Backend,
    readonly model: ModelConfig,
    readonly config: LoraConfig,
    values: (name: string, shape: [number, number]) => Float32Array,
  ) {
    checkLoraConfig(config, model);
    this.scale = config.rslora ? config.alpha / Math.sqrt(config.r) : config.alpha / config.r;
    const layers = new Set(config.layers ?? Array.from({ length: model.numLayers }, (_, l) => l));
    for (let l = 0; l < model.numLayers; l++) {
      const pairs: Partial<Record<LoraModule, LoraPair>> = {};
      if (layers.has(l)) {
        for (const mod of config.targets) {
          const [out, inp] = projectionShape(model, mod);
          const path = peftModulePath(l, mod);
          const aName = `${path}.lora_A.weight`;
          const bName = `${path}.lora_B.weight`;
          const a = backend.upload(values(aName, [config.r, inp]), [config.r, inp]);
          const b = backend.upload(values(bName, [out, config.r]), [out, config.r]);
          this.params.set(aName, a);
          this.params.set(bName, b);
          pairs[mod] = { a, b, aName, bName };
        }
      }
      this.layers.push(pairs);
    }
  }

  /** A fresh adapter: A kaiming-uniform as in PEFT, B zero (the model is unchanged). */
  static create(backend: Backend, model: ModelConfig, config: LoraConfig, seed: number): LoraAdapter {
    const rng = new Rng(seed);
    return new LoraAdapter(backend, model, config, (name, [rows, cols]) => {
      const x = new Float32Array(rows * cols);
      if (name.endsWith(".lora_A.weight")) {
        const bound = 1 / Math.sqrt(cols);
        for (let i = 0; i < x.length; i++) x[i] = (2 * rng.uniform() - 1) * bound;
      }
      return x;
    });
  }

  /** An adapter from host weights under PEFT names (every A and B of the config must be there). */
  static fromWeights(backend: Backend, model: ModelConfig, config: LoraConfig, weights: Map<string, Float32Array>): LoraAdapter {
    const used = new Set<string>();
    const adapter = new LoraAdapter(backend, model, config, (name, shape) => {
      const w = weights.get(name);
      if (!w) throw new Error(`LoRA adapter: missing tensor ${name} (shape [${shape.join(", ")}])`);
      if (w.length !== shape[0] * shape[1]) throw new RangeError(`LoRA adapter: ${name} has ${w.length} elements, expected [${shape.join(", ")}] (r = ${config.r})`);
      used.add(name);
      return w;
    });
    for (const name of weights.keys()) if (!used.has(name)) throw new Error(`LoRA adapter: unexpected tensor ${name} for this config (targets ${config.targets.join(",")}, r = ${config.r})`);
    return adapter;
  }

  get numParameters(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n;
  }

  grad(name: string): Tensor {
    let g = this.grads.get(name);
    if (!g) {
      const p = this.params.get(name);
      if (!p) throw new Error(`no LoRA parameter named ${name}`);
      g = this.backend.zeros(p.shape);
      this.grads.set(name, g);
    }
    return g;
  }

  zeroGrads(): void {
    for (const g of this.grads.values()) this.backend.fill(g, 0);
  }

  freeGrads(): void {
    for (const g of this.grads.values()) g.dispose();
    this.grads.clear();
  }

  async exportWeights(): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [name, t] of this.params) out.set(name, { data: (await this.backend.read(t)) as Float32Array, shape: [...t.shape] });
    return out;
  }

  /** W (out, in) += scale * B @ A for every adapted projection of `weights` (HF names). */
  mergeInto(weights: Map<string, Tensor>): void {
    this.layers.forEach((pairs, l) => {
      for (const [mod, p] of Object.entries(pairs) as [LoraModule, LoraPair][]) {
        const w = weights.get(`model.layers.${l}.${LORA_MODULES[mod]}.weight`)!;
        this.backend.matmul(w, p.b, p.a, { accumulate: true, alpha: this.scale });
      }
    });
  }

  dispose(): void {
    this.freeGrads();
    for (const t of this.params.values()) t.dispose();
  }
}
