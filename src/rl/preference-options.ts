// The options of `anvil dpo` (preference optimization), in one table like OPTIONS: documented
// where declared, with type, default, --help line and range. Options shared with `anvil train`
// (model loading, LoRA, optimizer, bookkeeping) are OPTIONS' own entries, so they read and
// check the same; the preference-specific ones (loss, beta, label smoothing, SimPO's margin)
// are declared here. Losses and their formulas: preference-loss.ts.
import { TASK_NAMES } from "../tasks/types.js";
import { GROUND_TRUTH_CHOICES } from "./pairs.js";
import { isIpo, PREFERENCE_LOSSES, type PreferenceLoss } from "./preference-loss.js";
import { checkLoraOptions, flag, int, num, OPTIONS, OptionsError, oneOf, text, type OptionSpec } from "./options.js";

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

  // ---- task: held-out evaluation, and the pairs of an online run ------------------------
  /** Task whose held-out items evaluate the policy (greedy; accuracy on answerable and
   * unanswerable items, abstain rate, as `anvil train`): before the first step and after the
   * last (after every round online). "" = no evaluation. Required with --online. */
  task: text("", `task for held-out evaluation, and the source of an online run's pairs (${TASK_NAMES.join(", ")}; default: none)`),
  minDepth: OPTIONS.minDepth,
  maxDepth: OPTIONS.maxDepth,
  evalN: OPTIONS.evalN,
  evalDepth: OPTIONS.evalDepth,
  /** Longest completion, in tokens: of the held-out answers and of an online run's samples. */
  maxNewTokens: OPTIONS.maxNewTokens,
  generationBatch: OPTIONS.generationBatch,

  // ---- online (iterative) DPO: pairs from the current policy, round after round ----------
  /** Iterative DPO (Xu et al. 2023, "Some things are more CRINGE than others"; Pang et al. 2024,
   * Iterative RPO): no --dataset; every round samples --samples completions for each of
   * --prompts-per-round new task prompts from the current policy, labels them with the task's
   * verifier (`anvil pairs`' makePairs), then takes --steps-per-round optimizer steps on those
   * pairs. The run is --rounds x --steps-per-round steps in all (one LR schedule); it
   * checkpoints at the end of every round (checkpointEvery does not apply) and resumes there. */
  online: flag(false, "online (iterative) DPO: each round samples pairs from the current policy on --task, then trains on them"),
  rounds: int(4, "online: rounds of sampling then training", { min: 1 }),
  /** Prompts sampled per round (half unanswerable), a new set each round (seeded by seed and
   * round). Each gives up to pairsPerPrompt pairs, none when all its samples score alike. */
  promptsPerRound: int(32, "online: task prompts sampled per round (each gives up to --pairs-per-prompt pairs)", { min: 1 }),
  stepsPerRound: int(8, "online: optimizer steps per round, on that round's pairs", { min: 1 }),
  samples: int(4, "online: completions sampled per prompt", { min: 2 }),
  pairsPerPrompt: int(1, "online: pairs kept per prompt at most (largest reward gap first)", { min: 1 }),
  /** When the task's ground-truth trajectory is the chosen side (see `anvil pairs`): never,
   * all-fail (prompts with no correct sample: Anchor's idea for DPO), always. */
  groundTruth: oneOf(GROUND_TRUTH_CHOICES, "never", "online: when the ground-truth trajectory is the chosen completion (never, all-fail, always)"),
  /** The reference of the reference-based losses. false (default): the starting model for the
   * whole run (each round's pairs are scored by it). true: the policy at the start of each
   * round, as in iterative DPO papers (each iteration's reference is the previous iteration's
   * model); costs nothing extra. */
  refreshReference: flag(false, "online: the reference is the policy at the start of each round (default: the starting model throughout)"),
  temperature: OPTIONS.temperature,
  topP: OPTIONS.topP,
  rewards: OPTIONS.rewards,
  rewardTimeoutMs: OPTIONS.rewardTimeoutMs,
  rewardHeapMb: OPTIONS.rewardHeapMb,

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
  /** Optimizer steps (online: rounds x stepsPerRound, set from them). */
  steps: int(100, "optimizer steps (online: --rounds x --steps-per-round)", { min: 0 }),
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
  if (o.task && !(TASK_NAMES as readonly string[]).includes(o.task)) throw new OptionsError(`--task ${o.task}: not a task; use one of ${TASK_NAMES.join(", ")}`);
  if (o.minDepth > o.maxDepth) throw new OptionsError(`--min-depth ${o.minDepth} is above --max-depth ${o.maxDepth}`);
  if (o.online) {
    if (!o.task) throw new OptionsError("--online samples its pairs from a task: give --task (e.g. --task graphli)");
    if (o.dataset) throw new OptionsError("--online makes its own pairs each round: drop --dataset (or drop --online to train on the file)");
    const total = o.rounds * o.stepsPerRound;
    if (user.steps !== undefined && user.steps !== total) throw new OptionsError(`--steps ${user.steps} disagrees with --rounds ${o.rounds} x --steps-per-round ${o.stepsPerRound} = ${total}: an online run's steps are set by its rounds (drop --steps)`);
    o.steps = total;
  } else if (o.refreshReference) throw new OptionsError("--refresh-reference applies to --online runs (an offline run's reference is its starting model)");
  checkLoraOptions(o, user);
  return o;
}
