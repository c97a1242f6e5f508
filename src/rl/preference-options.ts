// The options of `anvil dpo` (preference optimization), in one table like OPTIONS: documented
// where declared, with type, default, --help line and range. Options shared with `anvil train`
// (model loading, LoRA, optimizer, bookkeeping) are OPTIONS' own entries, so they read and
// check the same; the preference-specific ones (loss, beta, label smoothing, SimPO's margin)
// are declared here. Losses and their formulas: preference-loss.ts.
import { isIpo, PREFERENCE_LOSSES, type PreferenceLoss } from "./preference-loss.js";
import { checkLoraOptions, int, num, OPTIONS, OptionsError, oneOf, text, type OptionSpec } from "./options.js";

export const PREFERENCE_OPTIONS = {
  // ---- what to train -------------------------------------------------------------------
  /** Model directory (HF config.json + safetensors + tokenizer.json): the policy's starting
   * point and the frozen reference of the reference-based losses. */
  model: text("", "model directory (HF format) to start from; also the frozen reference"),
  /** Preference pairs, TRL's format: one {prompt, chosen, rejected} per line, each a string or a
   * chat-message list, with optional score_chosen / score_rejected in [0, 1] (MaPPO's prior). */
  dataset: text("", "preference pairs JSONL: {prompt, chosen, rejected[, score_chosen, score_rejected]} per line"),
  /** Run directory: config.json, metrics.jsonl, ref_logps.json, checkpoints/, report.html. */
  out: text("runs/dpo", "run directory (metrics.jsonl, ref_logps.json, checkpoints/, report.html)"),
  backend: OPTIONS.backend,
  threads: OPTIONS.threads,
  seed: int(1, "seed of the pair order (and of a fresh LoRA adapter): same seed, same run", { min: 0 }),
  adapter: OPTIONS.adapter,
  loraR: OPTIONS.loraR,
  loraAlpha: OPTIONS.loraAlpha,
  loraTargets: OPTIONS.loraTargets,
  gradientCheckpointing: OPTIONS.gradientCheckpointing,
  frozenDtype: OPTIONS.frozenDtype,

  // ---- loss (formulas in src/rl/preference-loss.ts) -------------------------------------
  /** sigmoid: DPO (Rafailov et al. 2023), with cDPO label smoothing when labelSmoothing > 0;
   * ipo: IPO (Azar et al. 2023) on per-token averaged log-probs, as TRL; simpo: SimPO (Meng et
   * al. 2024), reference-free and length-normalised, with target margin simpoGamma; mappo:
   * MaPPO (Lan et al. 2025, arXiv 2507.21183, eq. 8) on DPO, the rejected log-ratio weighted
   * by the prior reward gap score_chosen - score_rejected (1 when a pair has no scores: DPO
   * again); mappo-simpo, mappo-ipo: MaPPO's plug-in on SimPO (eq. 12) and on IPO (eq. 14). */
  loss: oneOf(PREFERENCE_LOSSES, "sigmoid", "preference loss: DPO (sigmoid), IPO, SimPO, MaPPO on DPO, SimPO or IPO"),
  /** β: for DPO / IPO / MaPPO the strength of the implicit KL to the reference (smaller: the
   * policy may move further; TRL's default 0.1); for SimPO the reward scale (TRL's CPO default for
   * simpo: 2.0; the paper uses 2.0-2.5). 0 = that default for the chosen loss. */
  beta: num(0, "beta: KL strength for DPO/IPO/MaPPO, reward scale for SimPO (0 = 0.1, or 2.0 for simpo)", { min: 0, shownDefault: "0.1 (simpo: 2.0)" }),
  /** cDPO's ε (Mitchell 2023): the assumed probability that a pair's label is flipped; the loss
   * becomes -(1-ε) log σ(z) - ε log σ(-z). 0 = plain DPO. Sigmoid-shaped losses only (not the ipo ones). */
  labelSmoothing: num(0, "label smoothing ε (cDPO): assumed probability of a flipped label (not with ipo)", { min: 0, max: 0.5 }),
  /** SimPO's target reward margin γ (simpo, mappo-simpo): the chosen reward must beat the
   * rejected one by γ; TRL's default 0.5, the paper's range 0.3-1.6 (with β 2.0-2.5). */
  simpoGamma: num(0.5, "SimPO target reward margin gamma (simpo, mappo-simpo)", { min: 0 }),

  // ---- optimization ----------------------------------------------------------------------
  /** Optimizer steps. */
  steps: int(100, "optimizer steps", { min: 0 }),
  /** Preference pairs per optimizer step (the loss is their mean). */
  batch: int(8, "preference pairs per step", { min: 1 }),
  /** Sequences per forward/backward pass: a pair is two (its chosen and rejected completions
   * share one packed pass); at least one pair. Bounds activation memory; same gradient. */
  microBatch: OPTIONS.microBatch,
  lr: OPTIONS.lr,
  warmupSteps: OPTIONS.warmupSteps,
  minLrRatio: OPTIONS.minLrRatio,
  weightDecay: OPTIONS.weightDecay,
  beta1: OPTIONS.beta1,
  beta2: OPTIONS.beta2,
  maxGradNorm: OPTIONS.maxGradNorm,

  // ---- bookkeeping ---------------------------------------------------------------------
  checkpointEvery: OPTIONS.checkpointEvery,
  reportEvery: OPTIONS.reportEvery,
  progress: OPTIONS.progress,
};

export type PreferenceOptions = { [K in keyof typeof PREFERENCE_OPTIONS]: (typeof PREFERENCE_OPTIONS)[K] extends OptionSpec<infer T> ? T : never };
export const PREFERENCE_OPTION_NAMES = Object.keys(PREFERENCE_OPTIONS) as (keyof PreferenceOptions)[];
export const PREFERENCE_DEFAULTS = Object.fromEntries(PREFERENCE_OPTION_NAMES.map((k) => [k, PREFERENCE_OPTIONS[k].default])) as PreferenceOptions;

/** β when the option is 0: TRL's defaults. */
export const defaultBeta = (loss: PreferenceLoss): number => (loss === "simpo" || loss === "mappo-simpo" ? 2.0 : 0.1);

/** Defaults, then the user's options; beta 0 becomes the loss's default. Cross-option checks. */
export function resolvePreferenceOptions(user: Partial<PreferenceOptions>): PreferenceOptions {
  const o: PreferenceOptions = { ...PREFERENCE_DEFAULTS, ...user };
  if (o.beta === 0) o.beta = defaultBeta(o.loss);
  if (isIpo(o.loss) && o.labelSmoothing > 0) throw new OptionsError(`labelSmoothing applies to the sigmoid-shaped losses; ${o.loss} has none (drop --label-smoothing)`);
  if (o.simpoGamma !== PREFERENCE_DEFAULTS.simpoGamma && o.loss !== "simpo" && o.loss !== "mappo-simpo")
    throw new OptionsError(`simpoGamma is SimPO's margin: it has no effect with --loss ${o.loss} (use --loss simpo or mappo-simpo)`);
  checkLoraOptions(o, user);
  return o;
}
