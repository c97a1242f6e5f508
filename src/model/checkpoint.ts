// Checkpoints: a Hugging Face model directory (config.json, model.safetensors, tokenizer files)
// that loads elsewhere unchanged, plus the training state needed to resume bit-identically:
//
//   <dir>/config.json              configToJson(config)
//   <dir>/model.safetensors        parameters, f32 (exact)
//   <dir>/tokenizer.json ...       copied from the source model directory, when given
//   <dir>/optimizer.safetensors    AdamW moments "m.<param>" / "v.<param>", f32
//   <dir>/optimizer.json           {"step": completed AdamW steps}
//   <dir>/trainer_state.json       whatever the trainer passes (step, RNG state, ...), as JSON
//
// With a LoRA adapter attached, the adapter is what is saved: adapter_config.json and
// adapter_model.safetensors (PEFT's layout, src/model/peft.ts) replace config.json and
// model.safetensors, and the optimizer moments are the adapter's (PEFT names).
//
// Atomic: everything is written into `<dir>.tmp-<pid>`, which is renamed to <dir> only when
// complete; an existing <dir> is moved aside first and removed after, so a crash leaves either
// the old checkpoint, the new one, or a stray .tmp-/.old- directory — never a half-written <dir>.
import { copyFile, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Backend, Tensor } from "../backend/backend.js";
import { configToJson, loadConfig } from "./config.js";
import { Model, frozenStorage, type FrozenDtype } from "./model.js";
import type { OptimizerState } from "./optim.js";
import { saveAdapter } from "./peft.js";
import { forEachWeight, readSafetensors, saveSafetensors, type SafetensorsDtype, type TensorToSave } from "./safetensors.js";
import { parameterShapes, type ModelConfig } from "./types.js";
import { readJsonFile } from "../util/json-file.js";
import { exists } from "../util/exists.js";

/** Tokenizer and generation files copied along with the weights when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "chat_template.jinja",
  "generation_config.json",
] as const;

export const OPTIMIZER_FILE = "optimizer.safetensors";
export const OPTIMIZER_JSON = "optimizer.json";
export const TRAINER_STATE_FILE = "trainer_state.json";

export interface SaveCheckpointOptions {
  /** Directory to copy tokenizer files from (the model the run started from). */
  tokenizerDir?: string;
  /** Optimizer state to resume from (AdamW.exportState()). */
  optimizer?: OptimizerState;
  /** JSON-serialisable trainer state (step, RNG state, data cursor, ...). */
  trainerState?: unknown;
  /**
   * Storage dtype of model.safetensors (default "F32"). BF16/F16 halve the size for a final
   * export but round the weights, so resuming from them is no longer bit-identical.
   */
  dtype?: SafetensorsDtype;
  /** Path or hub id of the base model, recorded as base_model_name_or_path of an adapter. */
  baseModel?: string;
}


/** Writes a checkpoint of `model` to `dir` atomically (see the file comment for the layout). */
export async function saveCheckpoint(dir: string, model: Model, opts: SaveCheckpointOptions = {}): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    if (model.adapter) {
      await saveAdapter(tmp, model.adapter, { baseModel: opts.baseModel, dtype: opts.dtype });
    } else {
      await writeFile(join(tmp, "config.json"), JSON.stringify(configToJson(model.config), null, 2) + "\n");
      await saveSafetensors(join(tmp, "model.safetensors"), await model.exportWeights(), { dtype: opts.dtype ?? "F32", metadata: { producer: "anvil-rl" } });
    }
    if (opts.tokenizerDir) {
      for (const f of TOKENIZER_FILES) {
        const src = join(opts.tokenizerDir, f);
        if (await exists(src)) await copyFile(src, join(tmp, f));
      }
    }
    if (opts.optimizer) {
      const tensors = new Map<string, TensorToSave>();
      for (const [name, data] of opts.optimizer.m) {
        const shape = [...model.trainable.params.get(name)!.shape];
        tensors.set(`m.${name}`, { data, shape });
        tensors.set(`v.${name}`, { data: opts.optimizer.v.get(name)!, shape });
      }
      await saveSafetensors(join(tmp, OPTIMIZER_FILE), tensors, { dtype: "F32", metadata: { step: String(opts.optimizer.step) } });
      await writeFile(join(tmp, OPTIMIZER_JSON), JSON.stringify({ step: opts.optimizer.step }) + "\n");
    }
    if (opts.trainerState !== undefined) await writeFile(join(tmp, TRAINER_STATE_FILE), JSON.stringify(opts.trainerState, null, 2) + "\n");
    const replacing = await exists(dir);
    if (replacing) {
      await rm(old, { recursive: true, force: true });
      await rename(dir, old);
    }
    await rename(tmp, dir);
    if (replacing) await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

export interface LoadedCheckpoint {
  config: ModelConfig;
  model: Model;
  /** null when the directory has no optimizer state (a plain model directory). */
  optimizer: OptimizerState | null;
  /** Parsed trainer_state.json, or null. */
  trainerState: unknown;
}

/** Reads only the optimizer state of a checkpoint directory (null when absent). */
export async function loadOptimizerState(dir: string): Promise<OptimizerState | null> {
  const path = join(dir, OPTIMIZER_FILE);
  if (!(await exists(path))) return null;
  const meta = await readJsonFile<{ step: number }>(join(dir, OPTIMIZER_JSON));
  const tensors = await readSafetensors(path);
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    if (name.startsWith("m.")) m.set(name.slice(2), t.data);
    else if (name.startsWith("v.")) v.set(name.slice(2), t.data);
    else throw new Error(`${path}: unexpected tensor ${name} (expected m.<param> / v.<param>)`);
  }
  return { step: meta.step, m, v };
}

/**
 * Finishes a save that crashed between moving the old checkpoint aside and renaming the new one
 * into place: `<dir>` is missing but `<dir>.old-<pid>` exists. The same save's `.tmp-<pid>` was
 * complete at that point, so it wins; otherwise the old checkpoint is put back.
 */
export async function recoverCheckpoint(dir: string): Promise<void> {
  if (await exists(dir)) return;
  const parent = dirname(dir);
  const base = basename(dir);
  let entries: string[];
  try {
    entries = await readdir(parent);
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.startsWith(`${base}.old-`) || !/^\d+$/.test(e.slice(base.length + 5))) continue;
    const tmp = join(parent, `${base}.tmp-${e.slice(base.length + 5)}`);
    if (await exists(tmp)) {
      await rename(tmp, dir);
      await rm(join(parent, e), { recursive: true, force: true });
    } else {
      await rename(join(parent, e), dir);
    }
    return;
  }
}

/**
 * Cleans up after saves that were killed mid-way under `root` (e.g. a run's checkpoints/):
 * finishes interrupted renames (recoverCheckpoint), then removes the leftover `<dir>.tmp-<pid>`
 * and `<dir>.old-<pid>` directories, which are otherwise never collected (each is a full model).
 * Only safe while no other process saves there (the caller holds the run directory's lock).
 * Returns the names removed.
 */
export async function removeStaleSaves(root: string): Promise<string[]> {
  const stale = /^(.+)\.(tmp|old)-\d+$/;
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return [];
  }
  for (const base of new Set(entries.map((e) => stale.exec(e)?.[1]).filter((b): b is string => !!b))) await recoverCheckpoint(join(root, base));
  const removed: string[] = [];
  for (const e of await readdir(root)) {
    if (!stale.test(e)) continue;
    await rm(join(root, e), { recursive: true, force: true });
    removed.push(e);
  }
  return removed;
}

/** Parsed trainer_state.json of a checkpoint directory, or null. */
export async function readTrainerState(dir: string): Promise<unknown> {
  const tsPath = join(dir, TRAINER_STATE_FILE);
  return (await exists(tsPath)) ? readJsonFile(tsPath) : null;
}

/**
 * Loads a checkpoint (or any HF model directory) onto `backend`, finishing an interrupted save
 * first. frozenDtype: see Model.fromWeights (the base of a LoRA run).
 */
export async function loadCheckpoint(dir: string, backend: Backend, opts: { frozenDtype?: FrozenDtype } = {}): Promise<LoadedCheckpoint> {
  await recoverCheckpoint(dir);
  const config = await loadConfig(dir);
  // Each weight goes to the backend as it is read (in bf16 for a LoRA base): the host never holds
  // the whole model in f32.
  const shapes = parameterShapes(config);
  const storage = frozenStorage(config, opts.frozenDtype ?? "f32");
  const tensors = new Map<string, Tensor>();
  let model: Model;
  try {
    await forEachWeight(dir, shapes, (name, data) => void tensors.set(name, backend.upload(data, shapes.get(name)!, storage(name))));
    model = Model.fromTensors(backend, config, tensors);
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  const optimizer = await loadOptimizerState(dir);
  return { config, model, optimizer, trainerState: await readTrainerState(dir) };
}
