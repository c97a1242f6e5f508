// What a training run (sft or train) does to a loaded base model before its first step:
// attach the LoRA adapter it trains (loaded from a directory, or fresh) and decide gradient
// checkpointing, and how the frozen base is stored. One place, so `anvil sft` and `anvil train` agree.
import type { FrozenDtype, Model } from "../model/model.js";
import { LoraAdapter, type LoraConfig } from "../model/lora.js";
import { loadAdapter } from "../model/peft.js";
import { mixSeed, PURPOSE } from "../util/seed.js";

/** Models above this size get gradient checkpointing by default under LoRA. */
export const AUTO_CHECKPOINTING_PARAMS = 100e6;

export interface TrainSetup {
  /** Adapter directory to load and keep training ("" = none). */
  adapter: string;
  /** Fresh adapter to create when `adapter` is empty; null with no adapter = full fine-tuning. */
  lora: LoraConfig | null;
  seed: number;
  gradientCheckpointing: boolean | "auto";
  /** Storage of the frozen weight matrices under LoRA (full fine-tuning freezes none: f32). */
  frozenDtype: FrozenDtype;
}

export function resolveCheckpointing(setting: boolean | "auto", lora: boolean, numParams: number): boolean {
  return setting === "auto" ? lora && numParams > AUTO_CHECKPOINTING_PARAMS : setting;
}

/**
 * Attaches the adapter to train (if any), stores the frozen base in s.frozenDtype under it,
 * and sets model.gradientCheckpointing; logs what it chose.
 */
export async function prepareForTraining(model: Model, s: TrainSetup, log: (line: string) => void): Promise<void> {
  if (s.adapter) model.attachAdapter(await loadAdapter(s.adapter, model.backend, model.config));
  else if (s.lora) model.attachAdapter(LoraAdapter.create(model.backend, model.config, s.lora, mixSeed(s.seed, PURPOSE.init, 0x10a)));
  if (model.adapter) await model.storeFrozenAs(s.frozenDtype);
  model.gradientCheckpointing = resolveCheckpointing(s.gradientCheckpointing, model.adapter !== null, model.numParameters);
  const a = model.adapter;
  const what = a
    ? `LoRA r=${a.config.r} alpha=${a.config.alpha} on ${a.config.targets.join(",")}${s.adapter ? ` (from ${s.adapter})` : ""}: ${(a.numParameters / 1e6).toFixed(2)}M trained, ${(model.numParameters / 1e6).toFixed(1)}M frozen (${model.frozenDtype})`
    : `full fine-tuning of ${(model.numParameters / 1e6).toFixed(2)}M parameters`;
  log(`anvil: ${what}; gradient checkpointing ${model.gradientCheckpointing ? "on" : "off"}`);
}
