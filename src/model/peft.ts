// LoRA adapters on disk in Hugging Face PEFT's layout, so they load in PEFT
// (PeftModel.from_pretrained) and vLLM, and adapters written by PEFT load here:
//
//   <dir>/adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "target_modules",
//                                     "base_model_name_or_path", "task_type": "CAUSAL_LM", ...}
//   <dir>/adapter_model.safetensors  base_model.model.model.layers.{i}.<module>.lora_A.weight (r, in)
//                                    base_model.model.model.layers.{i}.<module>.lora_B.weight (out, r)
//
// What PEFT can express and Anvil cannot compute (DoRA, per-module rank/alpha patterns, trained
// biases, modules_to_save, adapters on the embedding or LM head) is refused with the reason.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Backend } from "../backend/backend.js";
import { readJsonFile } from "../util/json-file.js";
import { ALL_LORA_MODULES, LORA_MODULES, LoraAdapter, parseLoraTargets, type LoraConfig, type LoraModule } from "./lora.js";
import { readSafetensors, saveSafetensors, type SafetensorsDtype } from "./safetensors.js";
import type { ModelConfig } from "./types.js";
import { exists } from "../util/exists.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

export class AdapterError extends Error {
  override name = "AdapterError";
}


/** Whether dir holds a PEFT adapter (adapter_config.json). */
export async function isAdapterDir(dir: string): Promise<boolean> {
  return exists(join(dir, ADAPTER_CONFIG_FILE));
}

/** adapter_config.json as PEFT writes it (LoraConfig.to_dict() fields). */
export function adapterConfigJson(c: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: c.layers ?? null,
    lora_alpha: c.alpha,
    lora_dropout: 0.0,
    modules_to_save: null,
    peft_type: "LORA",
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.targets.map((m) => LORA_MODULES[m].split(".")[1]),
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: c.rslora ?? false,
  };
}

/** Reads and checks adapter_config.json into a LoraConfig for a model of `model`'s shape. */
export async function loadAdapterConfig(dir: string, model: ModelConfig): Promise<{ config: LoraConfig; baseModel: string }> {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!(await exists(path))) throw new AdapterError(`${dir} is not a LoRA adapter directory: it has no ${ADAPTER_CONFIG_FILE}`);
  const j = await readJsonFile<Record<string, unknown>>(path);
  const fail = (why: string): never => {
    throw new AdapterError(`${path}: ${why}`);
  };
  if (j.peft_type !== "LORA") fail(`peft_type is ${JSON.stringify(j.peft_type)}; only LORA adapters are supported`);
  if (j.task_type !== undefined && j.task_type !== null && j.task_type !== "CAUSAL_LM") fail(`task_type is ${JSON.stringify(j.task_type)}, expected CAUSAL_LM`);
  if (j.use_dora) fail("DoRA adapters (use_dora) are not supported");
  if (j.bias !== undefined && j.bias !== "none") fail(`bias "${j.bias}" is not supported (only "none": biases are not trained)`);
  if (j.fan_in_fan_out) fail("fan_in_fan_out (GPT-2 Conv1D layers) does not apply to Qwen/Llama projections");
  for (const k of ["rank_pattern", "alpha_pattern"] as const)
    if (j[k] && typeof j[k] === "object" && Object.keys(j[k] as object).length > 0) fail(`${k} (per-module rank or alpha) is not supported`);
  if (Array.isArray(j.modules_to_save) && j.modules_to_save.length > 0) fail(`modules_to_save (${j.modules_to_save.join(", ")}: fully trained copies of base modules) is not supported`);
  if (j.lora_bias) fail("lora_bias (a trained bias on lora_B) is not supported");
  if (j.trainable_token_indices) fail("trainable_token_indices (trained embedding rows) is not supported");
  if (j.exclude_modules && (typeof j.exclude_modules === "string" || (Array.isArray(j.exclude_modules) && j.exclude_modules.length > 0)))
    fail("exclude_modules is not supported: list the adapted modules in target_modules instead");
  const r = j.r;
  const alpha = j.lora_alpha;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) fail(`r must be an integer >= 1, got ${JSON.stringify(r)}`);
  if (typeof alpha !== "number" || !(alpha > 0)) fail(`lora_alpha must be a number > 0, got ${JSON.stringify(alpha)}`);
  let layers: number[] | null = null;
  if (typeof j.layers_to_transform === "number") layers = [j.layers_to_transform];
  else if (Array.isArray(j.layers_to_transform)) layers = j.layers_to_transform as number[];
  const { targets, layers: matched } = resolveTargets(j.target_modules, model.numLayers, fail);
  if (matched) layers = layers ? layers.filter((l) => matched.includes(l)) : matched;
  return {
    config: { r: r as number, alpha: alpha as number, targets, rslora: j.use_rslora === true, layers },
    baseModel: typeof j.base_model_name_or_path === "string" ? j.base_model_name_or_path : "",
  };
}

/**
 * PEFT's target_modules: a list of module-name suffixes, "all-linear", or a regex matched in full
 * against module paths (model.layers.3.self_attn.q_proj). A regex must select the same modules in
 * every layer it touches.
 */
function resolveTargets(spec: unknown, numLayers: number, fail: (why: string) => never): { targets: LoraModule[]; layers: number[] | null } {
  if (Array.isArray(spec)) {
    try {
      return { targets: parseLoraTargets(spec.map(String)), layers: null };
    } catch (e) {
      return fail(`target_modules: ${(e as Error).message}`);
    }
  }
  if (typeof spec !== "string") return fail(`target_modules must be a list or a string, got ${JSON.stringify(spec)}`);
  if (spec === "all-linear") return { targets: [...ALL_LORA_MODULES], layers: null };
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${spec})$`);
  } catch (e) {
    return fail(`target_modules regex does not parse: ${(e as Error).message}`);
  }
  const perLayer = new Map<number, string>();
  for (let l = 0; l < numLayers; l++) {
    const mods = ALL_LORA_MODULES.filter((m) => re.test(`model.layers.${l}.${LORA_MODULES[m]}`) || re.test(`base_model.model.model.layers.${l}.${LORA_MODULES[m]}`));
    if (mods.length) perLayer.set(l, mods.join(","));
  }
  const kinds = new Set(perLayer.values());
  if (kinds.size === 0) fail(`target_modules regex ${JSON.stringify(spec)} matches no projection of this model`);
  if (kinds.size > 1) fail(`target_modules regex ${JSON.stringify(spec)} selects different projections in different layers, which is not supported`);
  const targets = [...kinds][0].split(",") as LoraModule[];
  return { targets, layers: perLayer.size === numLayers ? null : [...perLayer.keys()] };
}

/** PEFT names as saved, from names that may carry the adapter name (".lora_A.default.weight"). */
function canonicalName(name: string): string {
  return name.replace(/\.(lora_[AB])\.[^.]+\.weight$/, ".$1.weight");
}

/** Loads a PEFT adapter directory for a model of config `model`. */
export async function loadAdapter(dir: string, backend: Backend, model: ModelConfig): Promise<LoraAdapter> {
  const { config } = await loadAdapterConfig(dir, model);
  const path = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!(await exists(path))) {
    const legacy = (await exists(join(dir, "adapter_model.bin"))) ? " (it has adapter_model.bin, a pickle: re-save it with safe_serialization=True)" : "";
    throw new AdapterError(`${dir}: no ${ADAPTER_WEIGHTS_FILE}${legacy}`);
  }
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of await readSafetensors(path)) weights.set(canonicalName(name), t.data);
  try {
    return LoraAdapter.fromWeights(backend, model, config, weights);
  } catch (e) {
    throw new AdapterError(`${path}: ${(e as Error).message}`);
  }
}

/** Writes adapter_config.json and adapter_model.safetensors into dir (which must exist). */
export async function saveAdapter(dir: string, adapter: LoraAdapter, opts: { baseModel?: string; dtype?: SafetensorsDtype } = {}): Promise<void> {
  await writeFile(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(adapterConfigJson(adapter.config, opts.baseModel ?? ""), null, 2) + "\n");
  await saveSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), await adapter.exportWeights(), { dtype: opts.dtype ?? "F32", metadata: { producer: "anvil-rl" } });
}
