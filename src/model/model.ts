// The Qwen-family decoder (Qwen3, Qwen2, Llama), defined once over the Backend interface,
// with a hand-written backward in the style of llm.c. Forward saves the activations the
// backward needs in an Activations object; parameter gradients use +=, activation gradients
// are overwritten (scratch buffers shared by all layers).
//
// Block graph (per layer):
//   x -> RMSNorm -> q, k, v = Linear (+bias for Qwen2) -> [Qwen3: per-head RMSNorm of q, k]
//     -> RoPE -> causal GQA attention -> o_proj -> + x = mid
//   mid -> RMSNorm -> gate, up -> SwiGLU -> down -> + mid = out
// then a final RMSNorm; the LM head (tied to the embedding or not) is applied by the caller
// (the fused linear-logprob kernel in src/rl/step.ts, the one log-prob path; logits() for tests).
// Each projection may carry a LoRA adapter (src/model/lora.ts): y = x W^T + s (x A^T) B^T; while
// one is attached the base weights are frozen and only A and B receive gradients, and the
// frozen weight matrices (projections, embedding, LM head) may be stored in bf16
// (storeFrozenAs): the kernels widen them to f32 per tile, so only their storage halves.
//
// Use in a trainer (GRPO: the LM head goes through the fused linear GRPO loss, src/rl/step.ts):
//   model.zeroGrads();
//   const acts = model.forward(ids, B, T);     // model.gradientCheckpointing applies
//   ... scoring passes use model.forward(ids, B, T, { noGrad: true }) and be.linearLogprobForward ...
//   be.linearGrpoLoss(dHidden, model.lmHeadGrad() /* null when frozen */, stats, lp, ent, acts.hidden, model.lmHead(),
//                     targets, old, ref, rollout, advantages, mask, temp, { ...lossOptions, B, T });
//   model.backward(acts, dHidden); acts.dispose();
//   await optimizer.update();
//
// Letters: B batch, T time, N = B*T rows, H hidden, I intermediate, V vocab,
// nh / nkv query / key-value heads, hd head dim, qD = nh*hd, kvD = nkv*hd, S cache capacity.
// Tensors are allocated 2-D (rows, cols) because matmul reads (rows, cols) from the last dim;
// attention and RoPE see 4-D views of the same memory (Backend.view).
import type { Backend, DType, Tensor } from "../backend/backend.js";
import { type LoraAdapter, type LoraModule, type LoraPair } from "./lora.js";
import { EMBED_PARAM, FINAL_NORM_PARAM, LAYER_PARAMS, LM_HEAD_PARAM, parameterShapes, type ModelConfig } from "./types.js";

/** Storage of the frozen weight matrices under an adapter (the --frozen-dtype option). */
export const FROZEN_DTYPES = ["f32", "bf16"] as const;
export type FrozenDtype = (typeof FROZEN_DTYPES)[number];

/** The weight matrices an adapter freezes (see Model.frozenMatrixNames). */
export function frozenMatrixNames(c: ModelConfig): string[] {
  const names: string[] = [EMBED_PARAM];
  if (!c.tieWordEmbeddings) names.push(LM_HEAD_PARAM);
  for (let l = 0; l < c.numLayers; l++)
    for (const k of ["q", "k", "v", "o", "gate", "up", "down"] as const) names.push(`model.layers.${l}.${LAYER_PARAMS[k]}`);
  return names;
}

/** The storage dtype of each parameter when the frozen matrices are kept in `frozenDtype` (undefined: f32). */
export function frozenStorage(c: ModelConfig, frozenDtype: FrozenDtype): (name: string) => DType | undefined {
  const bf16 = new Set(frozenDtype === "bf16" ? frozenMatrixNames(c) : []);
  return (name) => (bf16.has(name) ? "bf16" : undefined);
}

export interface ForwardOptions {
  /**
   * Gradient checkpointing: keep only each block's input and recompute the block in
   * backward. Cuts activation memory to about (L+1)*N*H floats plus one block's worth,
   * for about one extra forward pass of compute. Gradients are bit-identical.
   * Default: model.gradientCheckpointing.
   */
  checkpointing?: boolean;
  /**
   * Inference only (scoring, reference-model logprobs): keeps no activations but the hidden
   * output, about 2*N*H floats plus one block's worth. backward() then throws.
   */
  noGrad?: boolean;
  /** Run the base model alone even when an adapter is attached (the KL reference under LoRA). */
  disableAdapter?: boolean;
}

/** What an optimizer updates and a gradient-norm clip reads: parameters and their gradients. */
export interface Trainable {
  readonly backend: Backend;
  readonly params: Map<string, Tensor>;
  readonly grads: Map<string, Tensor>;
}

/** Live and peak bytes of activations and backward scratch, counted at allocation. */
export class MemoryCounter {
  live = 0;
  peak = 0;
  add(bytes: number): void {
    this.live += bytes;
    if (this.live > this.peak) this.peak = this.live;
  }
  /** Starts a new peak measurement from what is live now. */
  resetPeak(): void {
    this.peak = this.live;
  }
}

/** Weights (or gradients) of one decoder layer, resolved from HF names once. */
interface LayerParams {
  inputNorm: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  postNorm: Tensor;
  gate: Tensor;
  up: Tensor;
  down: Tensor;
}

/** Per-block saved activations. 2-D tensors own memory; the *4 fields are views. */
interface BlockActs {
  ln1: Tensor; // (N, H)
  rstd1: Tensor; // (N)
  qPre: Tensor | null; // (N, qD) q before q-norm (Qwen3 only)
  kPre: Tensor | null; // (N, kvD)
  qRstd: Tensor | null; // (N*nh)
  kRstd: Tensor | null; // (N*nkv)
  q: Tensor; // (N, qD) after norm and RoPE
  k: Tensor; // (N, kvD) after norm and RoPE
  v: Tensor; // (N, kvD)
  att: Tensor; // (N, qD) attention output
  lse: Tensor; // (B, nh, T)
  mid: Tensor; // (N, H) residual after attention
  ln2: Tensor; // (N, H)
  rstd2: Tensor; // (N)
  gate: Tensor; // (N, I)
  up: Tensor; // (N, I)
  act: Tensor; // (N, I) silu(gate) * up
  /** LoRA intermediates x @ A^T (N, r) per adapted projection; empty without an adapter. */
  lora: Partial<Record<LoraModule, Tensor>>;
  q4: Tensor; // (B, T, nh, hd) views
  k4: Tensor; // (B, T, nkv, hd)
  v4: Tensor;
  att4: Tensor;
}

/** Owns a list of tensors so they can be counted and freed together. */
class TensorPool {
  readonly owned: Tensor[] = [];
  constructor(
    readonly backend: Backend,
    private readonly counter: MemoryCounter | null = null,
  ) {}
  private own(t: Tensor): Tensor {
    this.owned.push(t);
    this.counter?.add(t.size * 4);
    return t;
  }
  zeros(shape: number[], dtype: "f32" | "i32" = "f32"): Tensor {
    return this.own(this.backend.zeros(shape, dtype));
  }
  upload(data: Float32Array | Int32Array, shape: number[]): Tensor {
    return this.own(this.backend.upload(data, shape));
  }
  get bytes(): number {
    let n = 0;
    for (const t of this.owned) if (!t.disposed) n += t.size * 4;
    return n;
  }
  dispose(): void {
    this.counter?.add(-this.bytes);
    for (const t of this.owned) if (!t.disposed) t.dispose();
    this.owned.length = 0;
  }
}

/** What forward() saved for backward(). Call dispose() when done with it. */
export class Activations {
  /** Final-normed hidden states (B*T, H): the input of the LM head. */
  readonly hidden: Tensor;
  /** @internal */ readonly ids: Tensor; // (N) i32
  /** @internal */ readonly pos: Tensor; // (N) i32, t for row b*T + t
  /** @internal residuals[l] is the input of layer l; residuals[L] feeds the final norm. */
  readonly residuals: Tensor[];
  /** @internal one per layer, or a single scratch set reused under checkpointing. */
  readonly blocks: BlockActs[];
  /** @internal */ readonly rstdFinal: Tensor;
  constructor(
    readonly B: number,
    readonly T: number,
    readonly checkpointing: boolean,
    readonly noGrad: boolean,
    private readonly pool: TensorPool,
    parts: { hidden: Tensor; ids: Tensor; pos: Tensor; residuals: Tensor[]; blocks: BlockActs[]; rstdFinal: Tensor },
  ) {
    this.hidden = parts.hidden;
    this.ids = parts.ids;
    this.pos = parts.pos;
    this.residuals = parts.residuals;
    this.blocks = parts.blocks;
    this.rstdFinal = parts.rstdFinal;
  }
  /** Bytes of device memory held (views not double counted). */
  get bytes(): number {
    return this.pool.bytes;
  }
  get disposed(): boolean {
    return this.hidden.disposed;
  }
  dispose(): void {
    this.pool.dispose();
  }
}

/** Per-layer key/value cache for generation: (B, S, nkv, hd) each. */
export class KVCache {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  constructor(backend: Backend, config: ModelConfig, readonly B: number, readonly S: number) {
    for (let l = 0; l < config.numLayers; l++) {
      this.k.push(backend.zeros([B, S, config.numKvHeads, config.headDim]));
      this.v.push(backend.zeros([B, S, config.numKvHeads, config.headDim]));
    }
  }
  get bytes(): number {
    return this.k.reduce((n, t) => n + t.size * 4, 0) * 2;
  }
  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/** Scratch buffers for inference with a KV cache, reusable across calls of the same (B, Tq). */
export class InferenceScratch {
  /** @internal */ readonly pool: TensorPool;
  /** @internal */ readonly block: BlockActs;
  /** @internal */ readonly ids: Tensor; // (B*Tq) i32
  /** @internal */ readonly ropePos: Tensor; // (B*Tq) i32
  /** @internal */ readonly startPos: Tensor; // (B) i32
  /** @internal */ readonly x: Tensor; // (B*Tq, H) residual stream (ping)
  /** @internal */ readonly y: Tensor; // (B*Tq, H) residual stream (pong)
  /** Final-normed hidden states (B*Tq, H) of the last forwardCached() call. */
  readonly hidden: Tensor;
  /** @internal */ readonly rstdFinal: Tensor;
  constructor(model: Model, readonly B: number, readonly Tq: number) {
    this.pool = new TensorPool(model.backend);
    const N = B * Tq;
    const H = model.config.hiddenSize;
    this.block = model.allocBlock(this.pool, B, Tq, model.adapter !== null);
    this.ids = this.pool.zeros([N], "i32");
    this.ropePos = this.pool.zeros([N], "i32");
    this.startPos = this.pool.zeros([B], "i32");
    this.x = this.pool.zeros([N, H]);
    this.y = this.pool.zeros([N, H]);
    this.hidden = this.pool.zeros([N, H]);
    this.rstdFinal = this.pool.zeros([N]);
  }
  dispose(): void {
    this.pool.dispose();
  }
}

export class Model implements Trainable {
  /** Parameters under their Hugging Face names, HF layouts (nn.Linear weights are (out, in)). */
  readonly params = new Map<string, Tensor>();
  /** Gradients, same names and shapes; allocated on first use, then accumulated into (+=). */
  readonly grads = new Map<string, Tensor>();
  private readonly layers: LayerParams[] = [];
  /** The attached LoRA adapter: while set, forward applies it and backward trains only it. */
  adapter: LoraAdapter | null = null;
  /** Default of ForwardOptions.checkpointing (HF's gradient_checkpointing_enable()). */
  gradientCheckpointing = false;
  /** Bytes of activations and backward scratch, live and peak (deterministic, per allocation). */
  readonly activationMemory = new MemoryCounter();
  /** Gradient sinks for frozen parameters whose kernels always write a weight gradient. */
  private readonly sinks = new Map<string, Tensor>();

  private constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
  ) {}

  /**
   * Uploads host weights (HF names; every name of parameterShapes(config) must be present).
   * frozenDtype "bf16" uploads the matrices an adapter freezes (frozenMatrixNames) straight to
   * bf16, for a model about to be trained under LoRA: the f32 copies never reach the backend.
   */
  static fromWeights(backend: Backend, config: ModelConfig, weights: Map<string, Float32Array>, opts: { frozenDtype?: FrozenDtype } = {}): Model {
    const shapes = parameterShapes(config);
    const storage = frozenStorage(config, opts.frozenDtype ?? "f32");
    const tensors = new Map<string, Tensor>();
    try {
      for (const [name, shape] of shapes) {
        const w = weights.get(name);
        if (!w) throw new Error(`Model.fromWeights: missing parameter ${name} (shape [${shape.join(", ")}])`);
        const n = shape.reduce((a, b) => a * b, 1);
        if (w.length !== n) throw new RangeError(`Model.fromWeights: ${name} has ${w.length} elements, expected ${n} for shape [${shape.join(", ")}]`);
        tensors.set(name, backend.upload(w, shape, storage(name)));
      }
      for (const name of weights.keys()) {
        // A tied checkpoint may still carry lm_head.weight; anything else unknown is a config mismatch.
        if (!shapes.has(name) && !(name === LM_HEAD_PARAM && config.tieWordEmbeddings))
          throw new Error(`Model.fromWeights: unexpected parameter ${name} for this config`);
      }
      return Model.fromTensors(backend, config, tensors);
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
  }

  /**
   * A model over parameters already on `backend` (HF names, exactly those of
   * parameterShapes(config)); the model owns them from now on. What checkpoint loading uses, so
   * that each weight is uploaded as it is read (no host copy of the whole model).
   */
  static fromTensors(backend: Backend, config: ModelConfig, tensors: Map<string, Tensor>): Model {
    const m = new Model(backend, config);
    const shapes = parameterShapes(config);
    for (const [name, shape] of shapes) {
      const t = tensors.get(name);
      if (!t) throw new Error(`Model.fromTensors: missing parameter ${name} (shape [${shape.join(", ")}])`);
      if (t.backend !== backend) throw new TypeError(`Model.fromTensors: ${name} lives on backend ${t.backend.name}, expected ${backend.name}`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new RangeError(`Model.fromTensors: ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
      m.params.set(name, t);
    }
    for (const name of tensors.keys()) if (!shapes.has(name)) throw new Error(`Model.fromTensors: unexpected parameter ${name} for this config`);
    for (let l = 0; l < config.numLayers; l++) m.layers.push(m.resolveLayer(l, (n) => m.params.get(n) ?? null));
    return m;
  }

  /** Host copies of every parameter (HF names), e.g. for saving. */
  async exportWeights(): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [name, t] of this.params) out.set(name, { data: (await this.backend.read(t)) as Float32Array, shape: [...t.shape] });
    return out;
  }

  /** Copies parameter values from another model with the same config (e.g. policy -> reference). */
  copyParamsFrom(other: Model): void {
    for (const [name, t] of this.params) {
      const src = other.params.get(name);
      if (!src || src.size !== t.size) throw new Error(`copyParamsFrom: parameter ${name} missing or of another size`);
      this.backend.copy(t, src);
    }
  }

  get numParameters(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n;
  }

  /** Bytes of parameter storage on the backend (bf16 matrices count 2 bytes per element on cpu and cuda). */
  get parameterBytes(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.bytes;
    return n;
  }

  /**
   * The weight matrices an adapter freezes that may be stored in bf16: every projection of
   * every layer (adapted or not), the embedding and the untied LM head. RMSNorm weights and
   * biases stay f32 (tiny, and added or multiplied elementwise by f32-only kernels).
   */
  frozenMatrixNames(): string[] {
    return frozenMatrixNames(this.config);
  }

  /** Storage dtype of the frozen weight matrices now. */
  get frozenDtype(): FrozenDtype {
    return this.params.get(EMBED_PARAM)!.dtype === "bf16" ? "bf16" : "f32";
  }

  /**
   * Stores the frozen weight matrices (frozenMatrixNames) in `dtype`, one at a time (peak:
   * the model plus one f32 matrix). bf16 rounds to nearest even and needs an attached adapter
   * (the weights must be frozen); f32 widens them back exactly, e.g. before training the base.
   */
  async storeFrozenAs(dtype: FrozenDtype): Promise<void> {
    if (dtype === "bf16" && !this.adapter) throw new Error("storeFrozenAs: only frozen weights are stored in bf16; attach a LoRA adapter first");
    const be = this.backend;
    const target: DType = dtype;
    for (const name of this.frozenMatrixNames()) {
      const t = this.params.get(name)!;
      if (t.dtype === target) continue;
      const host = (await be.read(t)) as Float32Array;
      this.params.set(name, be.upload(host, t.shape, target));
      t.dispose();
    }
    this.layers.length = 0;
    for (let l = 0; l < this.config.numLayers; l++) this.layers.push(this.resolveLayer(l, (n) => this.params.get(n) ?? null));
  }

  /** What training updates: the adapter when one is attached (base frozen), else the model. */
  get trainable(): Trainable {
    return this.adapter ?? this;
  }

  /** Attaches a LoRA adapter made for this config; the base weights are frozen from now on. */
  attachAdapter(adapter: LoraAdapter): void {
    if (adapter.backend !== this.backend) throw new TypeError("attachAdapter: the adapter lives on another backend");
    const c = this.config;
    const a = adapter.model;
    if (a.numLayers !== c.numLayers || a.hiddenSize !== c.hiddenSize || a.intermediateSize !== c.intermediateSize || a.numHeads * a.headDim !== c.numHeads * c.headDim || a.numKvHeads * a.headDim !== c.numKvHeads * c.headDim)
      throw new Error("attachAdapter: the adapter was made for a model of another shape");
    this.freeGrads();
    this.adapter = adapter;
  }

  /** Detaches (and returns) the adapter; the base model is whole and trainable again. */
  detachAdapter(): LoraAdapter | null {
    const a = this.adapter;
    this.adapter = null;
    this.freeGrads();
    return a;
  }

  /** Folds the adapter into the base weights (W += scale * B A) and detaches it (PEFT's merge_and_unload). */
  mergeAdapter(): void {
    if (this.frozenDtype !== "f32") throw new Error("mergeAdapter: the base weights are stored in bf16; await model.storeFrozenAs(\"f32\") first");
    const a = this.detachAdapter();
    if (!a) throw new Error("mergeAdapter: no adapter is attached");
    a.mergeInto(this.params);
    a.dispose();
  }

  /** The LM head weight (V, H): the embedding table when tied. */
  lmHead(): Tensor {
    return this.params.get(this.config.tieWordEmbeddings ? EMBED_PARAM : LM_HEAD_PARAM)!;
  }

  /**
   * Gradient of the LM head weight (the embedding gradient when tied), allocated if needed.
   * null with an adapter attached: the head is frozen, and the fused kernel then skips its
   * weight-gradient products.
   */
  lmHeadGrad(): Tensor | null {
    const name = this.config.tieWordEmbeddings ? EMBED_PARAM : LM_HEAD_PARAM;
    return this.adapter ? null : this.grad(name);
  }

  /** The gradient tensor of a parameter, allocated (zeros) on first use. */
  grad(name: string): Tensor {
    let g = this.grads.get(name);
    if (!g) {
      const p = this.params.get(name);
      if (!p) throw new Error(`no parameter named ${name}`);
      g = this.backend.zeros(p.shape);
      this.grads.set(name, g);
    }
    return g;
  }

  private sink(shape: readonly number[]): Tensor {
    const key = shape.join("x");
    let t = this.sinks.get(key);
    if (!t) {
      t = this.backend.zeros(shape);
      this.sinks.set(key, t);
    }
    return t;
  }

  zeroGrads(): void {
    for (const g of this.grads.values()) this.backend.fill(g, 0);
    this.adapter?.zeroGrads();
  }

  /** Frees gradient memory (e.g. for a frozen reference model). */
  freeGrads(): void {
    for (const g of [...this.grads.values(), ...this.sinks.values()]) g.dispose();
    this.grads.clear();
    this.sinks.clear();
    this.adapter?.freeGrads();
  }

  dispose(): void {
    this.freeGrads();
    this.adapter?.dispose();
    this.adapter = null;
    for (const p of this.params.values()) p.dispose();
  }

  private resolveLayer(l: number, get: (name: string) => Tensor | null): LayerParams {
    const p = `model.layers.${l}.`;
    const need = (k: keyof typeof LAYER_PARAMS): Tensor => {
      const t = get(p + LAYER_PARAMS[k]);
      if (!t) throw new Error(`missing ${p + LAYER_PARAMS[k]}`);
      return t;
    };
    const c = this.config;
    return {
      inputNorm: need("inputNorm"),
      q: need("q"),
      k: need("k"),
      v: need("v"),
      o: need("o"),
      qBias: c.attentionBias ? need("qBias") : null,
      kBias: c.attentionBias ? need("kBias") : null,
      vBias: c.attentionBias ? need("vBias") : null,
      qNorm: c.qkNorm ? need("qNorm") : null,
      kNorm: c.qkNorm ? need("kNorm") : null,
      postNorm: need("postNorm"),
      gate: need("gate"),
      up: need("up"),
      down: need("down"),
    };
  }

  /**
   * Gradient tensors of layer l, allocating the missing ones; null while the base is frozen
   * (an adapter is attached).
   */
  private layerGrads(l: number): LayerParams | null {
    if (this.adapter) return null;
    return this.resolveLayer(l, (n) => (this.params.has(n) ? this.grad(n) : null));
  }

  /** Whether forward with these options applies the adapter. */
  private usesAdapter(opts: ForwardOptions): boolean {
    return this.adapter !== null && !opts.disableAdapter;
  }

  /**
   * Bytes forward(ids, B, T, opts) will hold in its Activations (equal to acts.bytes), for
   * choosing micro-batch sizes before allocating. Backward adds scratch of about
   * N * (3H + 3I + 2qD + 2kvD) floats, freed when it returns.
   */
  activationBytes(B: number, T: number, opts: ForwardOptions = {}): number {
    const c = this.config;
    const N = B * T;
    const H = c.hiddenSize;
    const qD = c.numHeads * c.headDim;
    const kvD = c.numKvHeads * c.headDim;
    const noGrad = opts.noGrad ?? false;
    const checkpointing = !noGrad && (opts.checkpointing ?? this.gradientCheckpointing);
    let block = N * (3 * H + 2 * qD + 2 * kvD + 3 * c.intermediateSize + 2 + c.numHeads);
    if (c.qkNorm) block += N * (qD + kvD + c.numHeads + c.numKvHeads);
    if (this.usesAdapter(opts)) block += N * this.adapter!.config.r * this.adapter!.config.targets.length;
    const blocks = noGrad || checkpointing ? 1 : c.numLayers;
    const residuals = noGrad ? 2 : c.numLayers + 1;
    return 4 * (2 * N + residuals * N * H + blocks * block + N * H + N);
  }

  /** @internal Allocates one block's activations for B rows of T tokens. */
  allocBlock(pool: TensorPool, B: number, T: number, withAdapter: boolean): BlockActs {
    const c = this.config;
    const N = B * T;
    const H = c.hiddenSize;
    const I = c.intermediateSize;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd } = c;
    const be = this.backend;
    const q = pool.zeros([N, nh * hd]);
    const k = pool.zeros([N, nkv * hd]);
    const v = pool.zeros([N, nkv * hd]);
    const att = pool.zeros([N, nh * hd]);
    const lora: Partial<Record<LoraModule, Tensor>> = {};
    if (withAdapter) for (const mod of this.adapter!.config.targets) lora[mod] = pool.zeros([N, this.adapter!.config.r]);
    return {
      ln1: pool.zeros([N, H]),
      rstd1: pool.zeros([N]),
      qPre: c.qkNorm ? pool.zeros([N, nh * hd]) : null,
      kPre: c.qkNorm ? pool.zeros([N, nkv * hd]) : null,
      qRstd: c.qkNorm ? pool.zeros([N * nh]) : null,
      kRstd: c.qkNorm ? pool.zeros([N * nkv]) : null,
      q,
      k,
      v,
      att,
      lse: pool.zeros([B, nh, T]),
      mid: pool.zeros([N, H]),
      ln2: pool.zeros([N, H]),
      rstd2: pool.zeros([N]),
      gate: pool.zeros([N, I]),
      up: pool.zeros([N, I]),
      act: pool.zeros([N, I]),
      lora,
      q4: be.view(q, [B, T, nh, hd]),
      k4: be.view(k, [B, T, nkv, hd]),
      v4: be.view(v, [B, T, nkv, hd]),
      att4: be.view(att, [B, T, nh, hd]),
    };
  }

  /** The adapter pair of layer l's projection when a's activations were made with the adapter. */
  private loraPair(l: number, mod: LoraModule, a: BlockActs): LoraPair | null {
    return a.lora[mod] ? this.adapter!.layers[l][mod] ?? null : null;
  }

  /** out (N, out) = x (N, in) @ W^T, plus scale * (x @ A^T) @ B^T when adapted (x @ A^T saved in a.lora). */
  private project(out: Tensor, x: Tensor, w: Tensor, l: number, mod: LoraModule, a: BlockActs): void {
    const be = this.backend;
    be.matmul(out, x, w, { transB: true });
    const p = this.loraPair(l, mod, a);
    if (!p) return;
    const xa = a.lora[mod]!;
    be.matmul(xa, x, p.a, { transB: true });
    be.matmul(out, xa, p.b, { transB: true, accumulate: true, alpha: this.adapter!.scale });
  }

  /**
   * Backward of project(): dx (N, in) (= or += when accumulate) from dout (N, out); the base
   * weight's gradient gW += dout^T x when the base is trained, else the adapter's:
   * dB += scale dout^T (x A^T), d(xA^T) = scale dout B, dA += d(xA^T)^T x, dx += d(xA^T) A.
   * dxa is (N, r) scratch.
   */
  private projectBackward(dx: Tensor, dout: Tensor, x: Tensor, w: Tensor, gW: Tensor | null, l: number, mod: LoraModule, a: BlockActs, dxa: Tensor | null, accumulate: boolean): void {
    const be = this.backend;
    be.matmul(dx, dout, w, { accumulate });
    if (gW) be.matmul(gW, dout, x, { transA: true, accumulate: true });
    const p = this.loraPair(l, mod, a);
    if (!p) return;
    const ad = this.adapter!;
    be.matmul(ad.grad(p.bName), dout, a.lora[mod]!, { transA: true, accumulate: true, alpha: ad.scale });
    be.matmul(dxa!, dout, p.b, { alpha: ad.scale });
    be.matmul(ad.grad(p.aName), dxa!, x, { transA: true, accumulate: true });
    be.matmul(dx, dxa!, p.a, { accumulate: true });
  }

  /**
   * One decoder block: x (N, H) -> out (N, H), saving activations into a.
   * `attend` runs the attention core on a.q4/k4/v4 (RoPE'd) into a.att4: causal attention
   * in training, KV-cache attention in generation.
   */
  private blockForward(l: number, x: Tensor, out: Tensor, a: BlockActs, pos: Tensor, attend: (a: BlockActs) => void): void {
    const be = this.backend;
    const c = this.config;
    const w = this.layers[l];
    const eps = c.rmsNormEps;
    if (x === out) throw new Error("blockForward: x and out must be different tensors");
    be.rmsnormForward(a.ln1, a.rstd1, x, w.inputNorm, eps);
    const qLin = a.qPre ?? a.q;
    const kLin = a.kPre ?? a.k;
    this.project(qLin, a.ln1, w.q, l, "q", a);
    this.project(kLin, a.ln1, w.k, l, "k", a);
    this.project(a.v, a.ln1, w.v, l, "v", a);
    if (w.qBias) be.biasAdd(qLin, w.qBias);
    if (w.kBias) be.biasAdd(kLin, w.kBias);
    if (w.vBias) be.biasAdd(a.v, w.vBias);
    if (w.qNorm && w.kNorm) {
      // rmsnorm infers rows from weight size (hd): (N, qD) is normed as (N*nh, hd).
      be.rmsnormForward(a.q, a.qRstd!, a.qPre!, w.qNorm, eps);
      be.rmsnormForward(a.k, a.kRstd!, a.kPre!, w.kNorm, eps);
    }
    be.ropeForward(a.q4, a.q4, pos, c.ropeTheta);
    be.ropeForward(a.k4, a.k4, pos, c.ropeTheta);
    attend(a);
    this.project(a.mid, a.att, w.o, l, "o", a);
    be.add(a.mid, a.mid, x);
    be.rmsnormForward(a.ln2, a.rstd2, a.mid, w.postNorm, eps);
    this.project(a.gate, a.ln2, w.gate, l, "gate", a);
    this.project(a.up, a.ln2, w.up, l, "up", a);
    be.swigluForward(a.act, a.gate, a.up);
    this.project(out, a.act, w.down, l, "down", a);
    be.add(out, out, a.mid);
  }

  /**
   * Training forward over B rows of T tokens (ids row-major (B, T), positions 0..T-1 per row).
   * Returns the saved activations; acts.hidden is the final-normed hidden (B*T, H).
   */
  forward(ids: Int32Array, B: number, T: number, opts: ForwardOptions = {}): Activations {
    const c = this.config;
    const N = B * T;
    if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) throw new RangeError(`forward: B and T must be positive integers, got ${B}, ${T}`);
    if (ids.length !== N) throw new RangeError(`forward: ids has ${ids.length} elements, expected B*T = ${N}`);
    for (let i = 0; i < N; i++)
      if (ids[i] < 0 || ids[i] >= c.vocabSize) throw new RangeError(`forward: token id ${ids[i]} at ${i} is outside [0, ${c.vocabSize})`);
    const be = this.backend;
    const pool = new TensorPool(be, this.activationMemory);
    const noGrad = opts.noGrad ?? false;
    const checkpointing = !noGrad && (opts.checkpointing ?? this.gradientCheckpointing);
    const withAdapter = this.usesAdapter(opts);
    const posHost = new Int32Array(N);
    for (let i = 0; i < N; i++) posHost[i] = i % T;
    const idsT = pool.upload(ids, [N]);
    const pos = pool.upload(posHost, [N]);
    // Without grad the residual stream ping-pongs between two buffers.
    const residuals: Tensor[] = [];
    for (let l = 0; l <= (noGrad ? 1 : c.numLayers); l++) residuals.push(pool.zeros([N, c.hiddenSize]));
    const res = (l: number) => residuals[noGrad ? l % 2 : l];
    const blocks: BlockActs[] = [];
    const nBlocks = checkpointing || noGrad ? 1 : c.numLayers;
    for (let i = 0; i < nBlocks; i++) blocks.push(this.allocBlock(pool, B, T, withAdapter));
    const hidden = pool.zeros([N, c.hiddenSize]);
    const rstdFinal = pool.zeros([N]);

    be.embeddingForward(residuals[0], idsT, this.params.get(EMBED_PARAM)!);
    const attend = (a: BlockActs) => be.attentionForward(a.att4, a.lse, a.q4, a.k4, a.v4);
    for (let l = 0; l < c.numLayers; l++) {
      this.blockForward(l, res(l), res(l + 1), blocks[blocks.length === 1 ? 0 : l], pos, attend);
    }
    be.rmsnormForward(hidden, rstdFinal, res(c.numLayers), this.params.get(FINAL_NORM_PARAM)!, c.rmsNormEps);
    return new Activations(B, T, checkpointing, noGrad, pool, { hidden, ids: idsT, pos, residuals, blocks, rstdFinal });
  }

  /**
   * Backward from dHidden (B*T, H), the gradient of the loss w.r.t. acts.hidden.
   * Accumulates (+=) into this.grads, or into the adapter's gradients when one is attached
   * (the base is then frozen). The LM head's own gradient is the caller's (it knows the head:
   * logits, fused logprob, ...). acts stays valid (dispose it after).
   */
  backward(acts: Activations, dHidden: Tensor): void {
    const be = this.backend;
    const c = this.config;
    const { B, T } = acts;
    const N = B * T;
    const H = c.hiddenSize;
    const I = c.intermediateSize;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd } = c;
    if (acts.disposed) throw new TypeError("backward: activations were disposed");
    if (acts.noGrad) throw new TypeError("backward: these activations come from forward(..., { noGrad: true })");
    if (dHidden.size !== N * H) throw new RangeError(`backward: dHidden has ${dHidden.size} elements, expected B*T*H = ${N * H}`);
    const withAdapter = Object.keys(acts.blocks[0].lora).length > 0;
    if (withAdapter && !this.adapter) throw new TypeError("backward: the activations used an adapter that has been detached");
    const frozen = this.adapter !== null;
    if (!frozen && this.frozenDtype !== "f32")
      throw new Error("backward: the base weights are stored in bf16 for a frozen base; await model.storeFrozenAs(\"f32\") before training them");

    // Activation-gradient scratch, shared by all layers (overwritten each layer).
    const s = new TensorPool(be, this.activationMemory);
    const dres = s.zeros([N, H]); // gradient w.r.t. the residual stream
    const dtmp = s.zeros([N, H]);
    const dln = s.zeros([N, H]);
    const dact = s.zeros([N, I]);
    const dgate = s.zeros([N, I]);
    const dup = s.zeros([N, I]);
    const datt = s.zeros([N, nh * hd]);
    const dq = s.zeros([N, nh * hd]);
    const dk = s.zeros([N, nkv * hd]);
    const dv = s.zeros([N, nkv * hd]);
    const dqPre = c.qkNorm ? s.zeros([N, nh * hd]) : null;
    const dkPre = c.qkNorm ? s.zeros([N, nkv * hd]) : null;
    const dxa = withAdapter ? s.zeros([N, this.adapter!.config.r]) : null;
    const datt4 = be.view(datt, [B, T, nh, hd]);
    const dq4 = be.view(dq, [B, T, nh, hd]);
    const dk4 = be.view(dk, [B, T, nkv, hd]);
    const dv4 = be.view(dv, [B, T, nkv, hd]);
    const recomputeOut = acts.checkpointing ? s.zeros([N, H]) : null;
    const attend = (a: BlockActs) => be.attentionForward(a.att4, a.lse, a.q4, a.k4, a.v4);
    // Norm weights of a frozen base: the kernels always write dweight, into a sink.
    const normGrad = (name: string) => (frozen ? this.sink(this.params.get(name)!.shape) : this.grad(name));

    try {
      be.rmsnormBackward(dres, normGrad(FINAL_NORM_PARAM), dHidden, acts.residuals[c.numLayers], this.params.get(FINAL_NORM_PARAM)!, acts.rstdFinal);
      for (let l = c.numLayers - 1; l >= 0; l--) {
        const x = acts.residuals[l];
        let a: BlockActs;
        if (acts.checkpointing) {
          a = acts.blocks[0];
          this.blockForward(l, x, recomputeOut!, a, acts.pos, attend);
        } else {
          a = acts.blocks[l];
        }
        const w = this.layers[l];
        const g = this.layerGrads(l);
        const p = `model.layers.${l}.`;
        const proj = (dx: Tensor, dout: Tensor, inp: Tensor, mod: LoraModule, accumulate: boolean) =>
          this.projectBackward(dx, dout, inp, w[mod], g ? g[mod] : null, l, mod, a, dxa, accumulate);
        // MLP: out = mid + act @ down^T, act = silu(ln2 @ gate^T) * (ln2 @ up^T).
        proj(dact, dres, a.act, "down", false);
        be.swigluBackward(dgate, dup, dact, a.gate, a.up);
        proj(dln, dgate, a.ln2, "gate", false);
        proj(dln, dup, a.ln2, "up", true);
        be.rmsnormBackward(dtmp, normGrad(p + LAYER_PARAMS.postNorm), dln, a.mid, w.postNorm, a.rstd2);
        be.accumulate(dres, dtmp); // dres is now d(mid)
        // Attention: mid = x + att @ o^T.
        proj(datt, dres, a.att, "o", false);
        be.attentionBackward(dq4, dk4, dv4, datt4, a.q4, a.k4, a.v4, a.att4, a.lse);
        be.ropeBackward(dq4, dq4, acts.pos, c.ropeTheta);
        be.ropeBackward(dk4, dk4, acts.pos, c.ropeTheta);
        let dqLin = dq;
        let dkLin = dk;
        if (w.qNorm && w.kNorm) {
          be.rmsnormBackward(dqPre!, normGrad(p + LAYER_PARAMS.qNorm), dq, a.qPre!, w.qNorm, a.qRstd!);
          be.rmsnormBackward(dkPre!, normGrad(p + LAYER_PARAMS.kNorm), dk, a.kPre!, w.kNorm, a.kRstd!);
          dqLin = dqPre!;
          dkLin = dkPre!;
        }
        if (g && g.qBias && g.kBias && g.vBias) {
          be.biasBackward(g.qBias, dqLin);
          be.biasBackward(g.kBias, dkLin);
          be.biasBackward(g.vBias, dv);
        }
        proj(dln, dqLin, a.ln1, "q", false);
        proj(dln, dkLin, a.ln1, "k", true);
        proj(dln, dv, a.ln1, "v", true);
        be.rmsnormBackward(dtmp, normGrad(p + LAYER_PARAMS.inputNorm), dln, x, w.inputNorm, a.rstd1);
        be.accumulate(dres, dtmp); // dres is now d(x), the previous layer's output
      }
      if (!frozen) be.embeddingBackward(this.grad(EMBED_PARAM), dres, acts.ids);
    } finally {
      s.dispose();
    }
  }

  /** logits (N, V) = hidden (N, H) @ lmHead^T, in a new tensor (tests and debugging). */
  logits(hidden: Tensor): Tensor {
    const N = hidden.size / this.config.hiddenSize;
    const out = this.backend.zeros([N, this.config.vocabSize]);
    this.backend.matmul(out, hidden, this.lmHead(), { transB: true });
    return out;
  }

  /**
   * Inference forward with a KV cache (prefill and decode). ids (B*Tq) row-major; row b's
   * token t sits at position start[b] + t: its key/value are written to the cache there and
   * it attends to cache positions 0 .. start[b] + t. Returns scratch.hidden (B*Tq, H).
   */
  forwardCached(ids: Int32Array, start: Int32Array, cache: KVCache, scratch: InferenceScratch): Tensor {
    const be = this.backend;
    const c = this.config;
    const { B, Tq } = scratch;
    if (ids.length !== B * Tq) throw new RangeError(`forwardCached: ids has ${ids.length} elements, expected B*Tq = ${B * Tq}`);
    if (start.length !== B) throw new RangeError(`forwardCached: start has ${start.length} elements, expected B = ${B}`);
    if (cache.B !== B) throw new RangeError(`forwardCached: cache has ${cache.B} rows, expected ${B}`);
    const ropePos = new Int32Array(B * Tq);
    for (let b = 0; b < B; b++) {
      if (start[b] < 0 || start[b] + Tq > cache.S) throw new RangeError(`forwardCached: row ${b} positions ${start[b]}..${start[b] + Tq - 1} exceed the cache capacity ${cache.S}`);
      for (let t = 0; t < Tq; t++) ropePos[b * Tq + t] = start[b] + t;
    }
    for (let i = 0; i < ids.length; i++)
      if (ids[i] < 0 || ids[i] >= c.vocabSize) throw new RangeError(`forwardCached: token id ${ids[i]} at ${i} is outside [0, ${c.vocabSize})`);
    be.write(scratch.ids, ids);
    be.write(scratch.ropePos, ropePos);
    be.write(scratch.startPos, start);
    be.embeddingForward(scratch.x, scratch.ids, this.params.get(EMBED_PARAM)!);
    let x = scratch.x;
    let y = scratch.y;
    for (let l = 0; l < c.numLayers; l++) {
      const attend = (a: BlockActs) => {
        be.kvWrite(cache.k[l], a.k4, scratch.startPos);
        be.kvWrite(cache.v[l], a.v4, scratch.startPos);
        be.attentionDecode(a.att4, a.q4, cache.k[l], cache.v[l], scratch.startPos);
      };
      this.blockForward(l, x, y, scratch.block, scratch.ropePos, attend);
      [x, y] = [y, x];
    }
    be.rmsnormForward(scratch.hidden, scratch.rstdFinal, x, this.params.get(FINAL_NORM_PARAM)!, c.rmsNormEps);
    return scratch.hidden;
  }
}
