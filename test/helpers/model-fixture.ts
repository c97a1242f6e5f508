// Reader for the fixtures written by test/fixtures/make_model_fixtures.py (format documented
// there: magic "ANVM", version, JSON index, then float32 / int32 blobs).
import { readFileSync } from "node:fs";
import type { LoraModule } from "../../src/model/lora.js";
import type { Model } from "../../src/model/model.js";
import type { ModelConfig } from "../../src/model/types.js";
import { batchFromTargets } from "../../src/rl/batch.js";
import { supervisedGradient } from "../../src/rl/step.js";

export const FIXTURE_MAGIC = 0x4d564e41;
export const FIXTURE_VERSION = 1;

export interface ModelFixture {
  config: ModelConfig;
  B: number;
  T: number;
  tensors: Map<string, { data: Float32Array | Int32Array; shape: number[] }>;
  /** LoRA fixtures: the adapter's rank, alpha and targets (its tensors under PEFT names). */
  lora?: { r: number; alpha: number; targets: LoraModule[] };
}

export function readModelFixture(path: string): ModelFixture {
  const buf = readFileSync(path);
  const magic = buf.readUInt32LE(0);
  const version = buf.readUInt32LE(4);
  if (magic !== FIXTURE_MAGIC) throw new Error(`${path}: bad magic ${magic.toString(16)}`);
  if (version !== FIXTURE_VERSION) throw new Error(`${path}: version ${version}, expected ${FIXTURE_VERSION}`);
  const n = buf.readUInt32LE(8);
  const index = JSON.parse(buf.subarray(12, 12 + n).toString("utf8"));
  const blob = 12 + n;
  const tensors = new Map<string, { data: Float32Array | Int32Array; shape: number[] }>();
  for (const t of index.tensors as { name: string; dtype: string; shape: number[]; offset: number }[]) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const bytes = buf.buffer.slice(buf.byteOffset + blob + t.offset, buf.byteOffset + blob + t.offset + count * 4);
    tensors.set(t.name, { data: t.dtype === "i32" ? new Int32Array(bytes) : new Float32Array(bytes), shape: t.shape });
  }
  const config: ModelConfig = { ...index.config, raw: {} };
  return { config, B: index.B, T: index.T, tensors, lora: index.lora };
}

/** The parameters of a fixture (every tensor that is not an input, output or gradient). */
export function fixtureWeights(f: ModelFixture): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  for (const [name, t] of f.tensors) {
    if (name.startsWith("model.") || name === "lm_head.weight") w.set(name, t.data as Float32Array);
  }
  return w;
}

/** The LoRA tensors of a fixture, under PEFT names. */
export function fixtureAdapterWeights(f: ModelFixture): Map<string, Float32Array> {
  const w = new Map<string, Float32Array>();
  for (const [name, t] of f.tensors) if (name.startsWith("base_model.")) w.set(name, t.data as Float32Array);
  return w;
}

/**
 * Mean next-token cross-entropy of targets (B, T) (< 0 ignored) and its gradient accumulated
 * into the model (or its adapter), through Anvil's one log-prob path (src/rl/step.ts).
 */
export async function lmLoss(model: Model, ids: Int32Array, targets: Int32Array, B: number, T: number, opts: { checkpointing?: boolean } = {}): Promise<{ loss: number; tokens: number }> {
  const batch = batchFromTargets(ids, targets, B, T);
  const saved = model.gradientCheckpointing;
  model.gradientCheckpointing = opts.checkpointing ?? saved;
  try {
    return { loss: await supervisedGradient(model, batch, B), tokens: batch.tokens };
  } finally {
    model.gradientCheckpointing = saved;
  }
}
