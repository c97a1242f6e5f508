// `anvil bench memory`: can this machine train the paper's models? Random models with the exact
// shapes of Qwen3-0.6B, Qwen3-1.7B and Qwen2.5-3B run one RL step as the trainer does it
// (rollouts with the KV cache -> reference log-probs -> GRPO update -> AdamW), full fine-tuning
// and LoRA, each case in its own process so its peak RSS (VmHWM) is its own. Reported next to
// the bytes-per-parameter floor: full fine-tuning with AdamW in f32 needs 16 bytes per parameter
// (weights, gradients, two moments) before any activation; LoRA needs 4 per frozen base
// parameter plus 16 per adapter parameter, or 2 per frozen matrix parameter when the frozen base
// is stored in bf16 (--frozen-dtype, the trainers' default under LoRA). A case whose floor
// exceeds physical memory is not started: it is reported as out of memory.
import { spawnSync } from "node:child_process";
import { totalmem } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CpuBackend } from "../src/backend/cpu.js";
import { generate, type Generation } from "../src/model/generate.js";
import { ALL_LORA_MODULES, LoraAdapter } from "../src/model/lora.js";
import { Model, type FrozenDtype } from "../src/model/model.js";
import { AdamW } from "../src/model/optim.js";
import { parameterShapes, type ModelConfig } from "../src/model/types.js";
import { packBatch } from "../src/rl/batch.js";
import { policyGradient, scoreTokens } from "../src/rl/step.js";
import { resolveCheckpointing } from "../src/rl/train-setup.js";
import { peakRssBytes, type BenchContext } from "./harness.js";
import { BENCH_CONFIG } from "./model.js";

/** Qwen3-0.6B's config.json, with overrides for the other two (the rest is bench/model.ts's). */
const qwen = (over: Partial<ModelConfig>): ModelConfig => ({
  ...BENCH_CONFIG,
  vocabSize: 151936,
  hiddenSize: 1024,
  intermediateSize: 3072,
  numLayers: 28,
  numHeads: 16,
  numKvHeads: 8,
  headDim: 128,
  maxPositionEmbeddings: 40960,
  ...over,
});

/** The shapes of the paper's three models, from their Hugging Face config.json files. */
export const PAPER_MODELS: Record<string, ModelConfig> = {
  "qwen3-0.6b": qwen({}),
  "qwen3-1.7b": qwen({ hiddenSize: 2048, intermediateSize: 6144 }),
  "qwen2.5-3b": qwen({ architecture: "qwen2", modelType: "qwen2", hiddenSize: 2048, intermediateSize: 11008, numLayers: 36, numKvHeads: 2, qkNorm: false, attentionBias: true, maxPositionEmbeddings: 32768 }),
};

export type MemoryMode = "full" | "lora";

export interface MemoryCase {
  /** A key of PAPER_MODELS, or "custom" with `config`. */
  model: string;
  config?: ModelConfig;
  mode: MemoryMode;
  /** Prompts per step, rollouts per prompt, prompt length, new tokens per rollout. */
  prompts: number;
  group: number;
  promptLen: number;
  newTokens: number;
  loraR: number;
  /** Sequences per forward/backward pass (TrainOptions.microBatch, default 16). */
  microBatch: number;
  /** Rollouts decoded together (TrainOptions.generationBatch, default 64). */
  generationBatch: number;
  threads: number;
  gradientCheckpointing: boolean | "auto";
  /** Storage of the frozen base under LoRA (default bf16, as the trainers). */
  frozenDtype?: FrozenDtype;
}

export interface MemoryResult {
  model: string;
  mode: MemoryMode;
  /** f32 for full fine-tuning (nothing frozen). */
  frozenDtype: FrozenDtype;
  params: number;
  trainedParams: number;
  /** Bytes that must exist before any activation (see the file comment). */
  floorBytes: number;
  peakRssBytes: number;
  stepSeconds: number;
  rolloutSeconds: number;
  refSeconds: number;
  updateSeconds: number;
  decodeTokensPerSecond: number;
  checkpointing: boolean;
}

/** Host weights generated one tensor at a time, so at most one host copy is alive at once. */
class RandomWeights extends Map<string, Float32Array> {
  private s = 12345;
  constructor(private readonly shapes: Map<string, number[]>) {
    super();
  }
  override get(name: string): Float32Array | undefined {
    const shape = this.shapes.get(name);
    if (!shape) return undefined;
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    if (shape.length === 1) return a.fill(1);
    const scale = 1 / Math.sqrt(shape[1]);
    for (let i = 0; i < a.length; i++) {
      this.s = (Math.imul(this.s, 1664525) + 1013904223) >>> 0;
      a[i] = (this.s / 2147483648 - 1) * scale;
    }
    return a;
  }
  override keys(): ReturnType<Map<string, Float32Array>["keys"]> {
    return this.shapes.keys();
  }
}

/** bf16Params: frozen parameters stored in bf16 (2 bytes instead of 4; LoRA only). */
export function floorBytes(params: number, adapterParams: number, mode: MemoryMode, bf16Params = 0): number {
  return mode === "full" ? 16 * params : 4 * params - 2 * bf16Params + 16 * adapterParams;
}

/** Elements of the weight matrices (every 2-D parameter: what --frozen-dtype bf16 stores in bf16). */
export function matrixParams(c: ModelConfig): number {
  let n = 0;
  for (const s of parameterShapes(c).values()) if (s.length === 2) n += s[0] * s[1];
  return n;
}

/** Adapter parameters of LoRA rank r on every projection of every layer. */
export function loraParams(c: ModelConfig, r: number): number {
  const qD = c.numHeads * c.headDim;
  const kvD = c.numKvHeads * c.headDim;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  return c.numLayers * r * (H + qD + (H + kvD) * 2 + qD + H + 2 * (H + I) + (I + H));
}

/** One RL step of the given case in this process. */
export async function runMemoryCase(k: MemoryCase): Promise<MemoryResult> {
  const c = k.config ?? PAPER_MODELS[k.model];
  if (!c) throw new Error(`bench memory: unknown model ${k.model} (one of ${Object.keys(PAPER_MODELS).join(", ")})`);
  const be = new CpuBackend({ threads: k.threads || undefined }); // 0 = all cores
  const frozenDtype: FrozenDtype = k.mode === "lora" ? k.frozenDtype ?? "bf16" : "f32";
  // Straight to bf16 as each random matrix is made (as the trainers load a LoRA base).
  const model = Model.fromWeights(be, c, new RandomWeights(parameterShapes(c)), { frozenDtype });
  if (k.mode === "lora") model.attachAdapter(LoraAdapter.create(be, c, { r: k.loraR, alpha: 2 * k.loraR, targets: [...ALL_LORA_MODULES] }, 1));
  model.gradientCheckpointing = resolveCheckpointing(k.gradientCheckpointing, k.mode === "lora", model.numParameters);
  const trained = model.trainable;
  let trainedParams = 0;
  for (const t of trained.params.values()) trainedParams += t.size;
  const opt = new AdamW(trained, { lr: 1e-5, schedule: "constant" });
  const V = c.vocabSize;
  const prompts = Array.from({ length: k.prompts }, (_, p) => Array.from({ length: k.promptLen }, (_, i) => (p * 7919 + i * 104729) % V));
  const rows = prompts.flatMap((p) => Array.from({ length: k.group }, () => p));

  const t0 = performance.now();
  const gens: Generation[] = [];
  for (let s = 0; s < rows.length; s += k.generationBatch) {
    const chunk = rows.slice(s, s + k.generationBatch);
    gens.push(...(await generate(model, chunk, { maxNewTokens: k.newTokens, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 1, eosIds: [], rowKeys: chunk.map((_, i) => s + i) })));
  }
  const t1 = performance.now();
  const batch = packBatch(rows.map((p, i) => ({ promptIds: p, completionIds: gens[i].tokens })), 0);
  // The KL reference: the base without the adapter under LoRA, a second model for full FT
  // (here the same weights score as the reference, which costs the compute but not the copy).
  const ref = (await scoreTokens(model, batch, 1, k.microBatch, { disableAdapter: true })).logprob;
  const t2 = performance.now();
  const advantages = Float32Array.from(rows, (_, i) => (i % k.group) - (k.group - 1) / 2);
  model.zeroGrads();
  await policyGradient(
    model,
    { batch, oldLogprob: null, refLogprob: ref, advantages, useRolloutLogprob: false },
    { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3", entropyCoef: 0, tisCap: 0, aggregation: "token-mean", maxCompletionLength: k.newTokens },
    1,
    k.microBatch,
  );
  await opt.update();
  const t3 = performance.now();
  const adapterParams = k.mode === "lora" ? trainedParams : 0;
  return {
    model: k.model,
    mode: k.mode,
    frozenDtype,
    params: model.numParameters,
    trainedParams,
    floorBytes: floorBytes(model.numParameters, adapterParams, k.mode, frozenDtype === "bf16" ? matrixParams(c) : 0),
    peakRssBytes: peakRssBytes(),
    stepSeconds: (t3 - t0) / 1000,
    rolloutSeconds: (t1 - t0) / 1000,
    refSeconds: (t2 - t1) / 1000,
    updateSeconds: (t3 - t2) / 1000,
    decodeTokensPerSecond: (rows.length * k.newTokens) / ((t1 - t0) / 1000),
    checkpointing: model.gradientCheckpointing,
  };
}

export interface MemoryBenchOptions {
  /** "PxGxN" or "PxGxNxL": prompts, group size, new tokens, prompt length (default 8x5x256x64, the issue's step). */
  shape?: string;
  models?: string[];
  modes?: MemoryMode[];
  threads?: number;
  microBatch?: number;
  generationBatch?: number;
  /** LoRA cases: storage of the frozen base, one case each (default ["bf16"]). */
  frozenDtypes?: FrozenDtype[];
  /** As the trainers' --gradient-checkpointing (default "auto": on under LoRA above 100M parameters). */
  gradientCheckpointing?: boolean | "auto";
}

const GiB = 2 ** 30;

function parseShape(s: string): { prompts: number; group: number; newTokens: number; promptLen: number } {
  const n = s.split("x").map(Number);
  if ((n.length !== 3 && n.length !== 4) || !n.every((x) => Number.isInteger(x) && x >= 1))
    throw new RangeError(`--shape must be PxGxN or PxGxNxL (prompts x group x new tokens [x prompt length]), positive integers, got "${s}"`);
  return { prompts: n[0], group: n[1], newTokens: n[2], promptLen: n[3] ?? 64 };
}

/** Every requested case in a child process of its own, one bench row each. */
export async function runMemoryBench(ctx: BenchContext, opts: MemoryBenchOptions = {}): Promise<void> {
  const shape = opts.shape ? parseShape(opts.shape) : ctx.quick ? { prompts: 2, group: 2, promptLen: 32, newTokens: 8 } : { prompts: 8, group: 5, promptLen: 64, newTokens: 256 };
  const self = fileURLToPath(import.meta.url);
  for (const model of opts.models ?? Object.keys(PAPER_MODELS)) {
    const cases = (opts.modes ?? (["lora", "full"] as MemoryMode[])).flatMap((mode): [MemoryMode, FrozenDtype][] =>
      mode === "lora" ? (opts.frozenDtypes ?? ["bf16"]).map((d) => [mode, d]) : [[mode, "f32"]],
    );
    for (const [mode, frozenDtype] of cases) {
      const k: MemoryCase = { model, mode, ...shape, loraR: 16, microBatch: opts.microBatch ?? 16, generationBatch: opts.generationBatch ?? 64, threads: opts.threads ?? 0, gradientCheckpointing: opts.gradientCheckpointing ?? "auto", frozenDtype };
      const c = PAPER_MODELS[model];
      if (!c) throw new Error(`bench memory: unknown model ${model} (one of ${Object.keys(PAPER_MODELS).join(", ")})`);
      let params = 0;
      for (const s of parameterShapes(c).values()) params += s.reduce((a, b) => a * b, 1);
      const floor = floorBytes(params, mode === "lora" ? loraParams(c, 16) : 0, mode, frozenDtype === "bf16" ? matrixParams(c) : 0);
      const name = `RL step ${model} ${mode === "lora" ? `LoRA r=16, frozen ${frozenDtype}` : "full FT"} (${shape.prompts}x${shape.group}x${shape.newTokens}, prompt ${shape.promptLen})`;
      const impl = `anvil cpu (${opts.threads || "all"} threads)`;
      ctx.progress(name);
      if (floor > totalmem()) {
        ctx.row({ name, impl, seconds: NaN, note: `out of memory: the floor alone is ${(floor / GiB).toFixed(1)} GiB > ${(totalmem() / GiB).toFixed(1)} GiB physical; not started` });
        continue;
      }
      const r = spawnSync(process.execPath, [self, JSON.stringify(k)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      const last = r.stdout.trim().split("\n").pop() ?? "";
      if (r.status !== 0 || !last.startsWith("{")) {
        const why = r.signal === "SIGKILL" ? "killed (out of memory)" : `exit ${r.status ?? r.signal}`;
        ctx.row({ name, impl, seconds: NaN, note: `${why}; floor ${(floor / GiB).toFixed(1)} GiB` });
        continue;
      }
      const m = JSON.parse(last) as MemoryResult;
      ctx.row({
        name,
        impl,
        seconds: m.stepSeconds,
        peakBytes: m.peakRssBytes,
        note:
          `peak RSS ${(m.peakRssBytes / GiB).toFixed(2)} GiB vs floor ${(m.floorBytes / GiB).toFixed(2)} GiB (${(m.params / 1e6).toFixed(0)}M params, ${(m.trainedParams / 1e6).toFixed(1)}M trained); ` +
          `rollout ${m.rolloutSeconds.toFixed(1)} s (decode ${m.decodeTokensPerSecond.toFixed(1)} tok/s), ref ${m.refSeconds.toFixed(1)} s, update ${m.updateSeconds.toFixed(1)} s; checkpointing ${m.checkpointing ? "on" : "off"}`,
      });
    }
  }
}

// A child process runs one case: `node bench/memory.js '<MemoryCase JSON>'`, one JSON line out.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const k = JSON.parse(process.argv[2]) as MemoryCase;
  runMemoryCase(k).then(
    (r) => process.stdout.write(JSON.stringify(r) + "\n"),
    (e: Error) => {
      process.stderr.write(`bench memory: ${e.message}\n`);
      process.exit(1);
    },
  );
}
