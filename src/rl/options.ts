// Every training hyperparameter, in one typed object: documented where declared, defaulted,
// validated with errors that say how to fix them, loadable from JSON/YAML, overridable by flags.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { KlEstimator, LossAggregation } from "../backend/backend.js";
import { parseLoraTargets, type LoraConfig } from "../model/lora.js";

export const ALGOS = ["grpo", "dr-grpo", "anchor", "rloo", "reinforce++"] as const;
export type Algo = (typeof ALGOS)[number];
export const ADVANTAGES = ["grpo", "dr-grpo", "rloo", "reinforce++"] as const;
export type AdvantageKind = (typeof ADVANTAGES)[number];
export const ANCHOR_MODES = ["off", "always", "all-fail"] as const;
export type AnchorMode = (typeof ANCHOR_MODES)[number];
export const ANCHOR_ANNEAL = ["none", "linear", "cosine"] as const;
export type AnchorAnneal = (typeof ANCHOR_ANNEAL)[number];
export const FILTERS = ["none", "zero-std", "balanced"] as const;
export type FilterKind = (typeof FILTERS)[number];
export const CURRICULA = ["fixed", "linear", "adaptive"] as const;
export type CurriculumKind = (typeof CURRICULA)[number];
export const BACKENDS = ["auto", "cpu", "cuda", "webgpu"] as const;
export type BackendChoice = (typeof BACKENDS)[number];
const KLS = ["k1", "k2", "k3"] as const;
const AGGREGATIONS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"] as const;
const TASKS = ["graphla", "graphli"] as const;

export interface TrainOptions {
  // ---- what to train -------------------------------------------------------------------
  /** Model directory (HF config.json + safetensors + tokenizer.json). Empty: make the tiny
   * default with `init-model --preset tiny` and warm it up with SFT first. */
  model: string;
  /** Task generator: graphla (linear algebra over dish prices) or graphli (logical inference). */
  task: (typeof TASKS)[number];
  /** Optional JSONL dataset ({prompt, answer, ...} per line) used instead of generated prompts. */
  dataset: string;
  /** Run directory: config.json, metrics.jsonl, samples.jsonl, checkpoints/, report.html. */
  out: string;
  /** Compute backend; auto tries cuda, then webgpu, then cpu. */
  backend: BackendChoice;
  /** CPU threads (0 = all cores). */
  threads: number;
  /** Seed for data, sampling and initialisation: same seed, same run. */
  seed: number;

  // ---- adapters (LoRA, Hu et al. 2021; PEFT's layout on disk) ---------------------------
  /** A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to start
   * from and keep training; its rank, alpha and targets are used. Implies LoRA training. */
  adapter: string;
  /** LoRA rank r; 0 = full fine-tuning (every parameter trained, 16 bytes per parameter with
   * AdamW). With r > 0 the base weights are frozen and only the adapter (A, B) is trained,
   * checkpoints hold the adapter, and the KL reference is the base without it (no second copy).
   * Typical: 8-64. */
  loraR: number;
  /** LoRA alpha: the update is (alpha / r) * B A. 0 = 2 * r (a common choice, e.g. Unsloth's). */
  loraAlpha: number;
  /** Projections carrying adapters: any of q,k,v,o,gate,up,down (or q_proj ..., all-linear). */
  loraTargets: string;

  // ---- algorithm -----------------------------------------------------------------------
  /** Preset: grpo (Shao et al. 2024), dr-grpo (Liu et al. 2025: no std, no length bias),
   * anchor (GRPO + ground-truth trajectory injection), rloo, reinforce++. It sets
   * `advantage`, `lossAggregation` and `anchor` unless those are given explicitly. */
  algo: Algo;
  /** Advantage estimator: grpo (r-mean)/(std+1e-4), dr-grpo (r-mean), rloo (leave-one-out
   * mean), reinforce++ (group mean, then batch-normalised). */
  advantage: AdvantageKind;
  /** Anchor (arXiv 2511.09222): replace `anchorCount` of the G rollouts of a group by the
   * task's ground-truth trajectory. always (the paper's method, the default of algo=anchor):
   * every group; all-fail: only groups where every rollout failed (a correct "unknown" on an
   * unanswerable item is a pass); off. A trajectory longer than maxNewTokens is not injected
   * and is counted in the metric anchor_too_long. */
  anchor: AnchorMode;
  /** Ground-truth trajectories per group when Anchor applies (1 .. groupSize-1). */
  anchorCount: number;
  /** Anchor annealing: probability of injecting decays from 1 to 0 over `anchorAnnealSteps`. */
  anchorAnneal: AnchorAnneal;
  /** Steps over which Anchor anneals (0 = the whole run). */
  anchorAnnealSteps: number;

  // ---- rollouts ------------------------------------------------------------------------
  /** Optimizer steps. */
  steps: number;
  /** Prompts per step (groups). The batch is promptsPerStep * groupSize sequences. */
  promptsPerStep: number;
  /** Rollouts per prompt, G. Larger G gives better baselines at linear cost. */
  groupSize: number;
  /** Longest completion, in tokens. */
  maxNewTokens: number;
  /** Sampling temperature for rollouts (1 = the policy itself). */
  temperature: number;
  /** Nucleus sampling mass (1 = off). Off-policy when < 1: enable tisCap. */
  topP: number;
  /** Top-k sampling (0 = off). */
  topK: number;
  /** Min-p sampling (0 = off). */
  minP: number;
  /** Comma-separated base URLs of OpenAI-compatible servers (vLLM, SGLang, `anvil serve`) to
   * draw rollouts from instead of generating in process ("" = in process). Groups are spread
   * over them; a server that fails or times out has its requests retried on the others. Their
   * per-token log-probs feed truncated importance sampling (tisCap, set to 2 unless given). */
  rolloutServer: string;
  /** Publish the learner's weights to the rollout servers every N optimizer steps. With N > 1
   * rollouts lag the learner by up to N-1 updates (off-policy: keep tisCap on). */
  syncEvery: number;
  /** Directory the published weights are written to (each version atomically, as
   * weights-vN); every server must be able to read it. "" = <out>/published. */
  syncDir: string;
  /** Per-request timeout of a rollout server; a slower server counts as failed. */
  rolloutTimeoutMs: number;

  // ---- loss ----------------------------------------------------------------------------
  /** PPO clip lower bound: ratio >= 1 - epsLow. */
  epsLow: number;
  /** PPO clip upper bound: ratio <= 1 + epsHigh (DAPO's clip-higher uses 0.28). */
  epsHigh: number;
  /** Dual clip constant c for negative advantages (Ye et al. 2020); 0 = off, usually 3. */
  dualClip: number;
  /** KL coefficient against the frozen initial policy (0 = no reference model kept). */
  beta: number;
  /** KL estimator (Schulman 2020): k1 log-ratio, k2 squared, k3 unbiased low-variance. */
  kl: KlEstimator;
  /** Entropy bonus coefficient (loss -= entropyCoef * H). */
  entropyCoef: number;
  /** Truncated importance-sampling cap for rollout/trainer mismatch (0 = off). */
  tisCap: number;
  /** How token losses are combined: token-mean (DAPO), seq-mean-token-mean (original GRPO),
   * seq-mean-token-sum, dr-grpo (sum / (B * maxNewTokens)). */
  lossAggregation: LossAggregation;
  /** Policy updates per batch (mu). > 1 makes the ratio and clipping matter. */
  numIterations: number;

  // ---- optimizer -----------------------------------------------------------------------
  /** Peak learning rate (AdamW); 0 = by model size: 3e-4 under 10M parameters (the tiny
   * and small presets), 1e-5 under 1B, 1e-6 above (TRL's default for real LLMs). */
  lr: number;
  /** Linear warmup steps. */
  warmupSteps: number;
  /** Cosine decay floor, as a fraction of lr. */
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Global grad-norm clip (0 = off). */
  maxGradNorm: number;
  /** Sequences per forward/backward pass (TRL's per-device batch): bounds activation memory,
   * which grows linearly with it; the gradient is the same for any value (each micro-batch's
   * loss is weighted by its share of the batch). */
  microBatch: number;
  /** Rollouts decoded together: the KV cache (layers * rows * length * 2 * kvDim floats) grows
   * linearly with it, decoding speed too on CPUs (bigger matmuls). Rollouts do not depend on it
   * (each row's sampling is seeded by its own key). */
  generationBatch: number;
  /** Recompute each block's activations in backward, keeping only block inputs: activation
   * memory falls from about L blocks' worth to one, for about one extra forward of compute;
   * gradients are identical. auto: on under LoRA for models over 100M parameters, else off. */
  gradientCheckpointing: boolean | "auto";

  // ---- rewards -------------------------------------------------------------------------
  /** Reward terms with weights, e.g. "correct" (the default) or "honesty:1,format:0.1".
   * Built-ins: correct (the paper's outcome reward: 1 if correct, abstaining is correct only
   * on unanswerable items, else 0), honesty (+1 correct, 0 abstain on an answerable item,
   * -1 wrong; makes "unknown" the safe answer for a weak policy), format (1 if the output
   * parses and is not an abstention on an answerable item). A term may also be the path of a
   * .js/.mjs module exporting `reward(completion, instance)`. Table: src/rewards/rewards.ts. */
  rewards: string;
  /** Per-call reward timeout; a hanging or throwing reward costs that sample, not the run. */
  rewardTimeoutMs: number;
  /** Heap limit of each reward worker thread, in MB (V8's old generation; >= 16). A reward
   * module that exhausts it costs that sample (0 for its term, counted in reward_failures);
   * its worker is replaced and the run goes on. Without a limit such a module aborts the
   * whole trainer. Raise it for reward modules that legitimately hold large data. */
  rewardHeapMb: number;

  // ---- data ----------------------------------------------------------------------------
  /** Curriculum over depth: fixed (minDepth..maxDepth uniformly), linear (max depth grows
   * over the run), adaptive (raise depth when accuracy > 0.7, lower when < 0.3). */
  curriculum: CurriculumKind;
  minDepth: number;
  maxDepth: number;
  /** Group filter: zero-std drops groups whose rewards are all equal (no signal);
   * balanced keeps groups with pass rate strictly in (0,1); both refill from new prompts. */
  filter: FilterKind;
  /** Extra generation rounds allowed per step to refill filtered groups. */
  maxRefills: number;
  /** Dataset prompts longer than the model's context minus maxNewTokens: an error naming the
   * lines (false, the default), or cut to their last tokens (true; the question comes last in
   * a prompt, as in TRL's left truncation), with one log line saying how many were cut. */
  truncatePrompts: boolean;

  // ---- SFT warm start ------------------------------------------------------------------
  /** SFT steps on ground-truth traces before RL (0 = none; the tiny default uses 400). */
  sftSteps: number;
  sftLr: number;
  sftBatch: number;

  // ---- bookkeeping ---------------------------------------------------------------------
  /** Checkpoint every N steps (atomic; the last good one is kept on NaN). */
  checkpointEvery: number;
  /** Held-out evaluation every N steps (0 = only at the end). */
  evalEvery: number;
  /** Held-out evaluation size (half unanswerable). */
  evalN: number;
  /** Depth of the held-out items (0 = uniform over minDepth..maxDepth, like training). */
  evalDepth: number;
  /** Rewrite report.html every N steps. */
  reportEvery: number;
  /** Samples logged to samples.jsonl per step. */
  samplesPerStep: number;
  /** Progress bar on stderr (auto: when stderr is a TTY). */
  progress: boolean;
}

export const DEFAULTS: TrainOptions = {
  model: "",
  task: "graphli",
  dataset: "",
  out: "runs/anvil",
  backend: "auto",
  threads: 0,
  seed: 1,
  adapter: "",
  loraR: 0,
  loraAlpha: 0,
  loraTargets: "q,k,v,o,gate,up,down",
  algo: "anchor",
  advantage: "grpo",
  anchor: "always",
  anchorCount: 1,
  anchorAnneal: "none",
  anchorAnnealSteps: 0,
  steps: 100,
  promptsPerStep: 8,
  groupSize: 8,
  maxNewTokens: 128,
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  rolloutServer: "",
  syncEvery: 1,
  syncDir: "",
  rolloutTimeoutMs: 120_000,
  epsLow: 0.2,
  epsHigh: 0.28,
  dualClip: 3,
  beta: 0,
  kl: "k3",
  entropyCoef: 0,
  tisCap: 0,
  lossAggregation: "token-mean",
  numIterations: 1,
  lr: 0,
  warmupSteps: 5,
  minLrRatio: 0.1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.99,
  maxGradNorm: 1,
  microBatch: 16,
  generationBatch: 64,
  gradientCheckpointing: "auto",
  rewards: "correct",
  rewardTimeoutMs: 2000,
  rewardHeapMb: 256,
  curriculum: "fixed",
  minDepth: 1,
  maxDepth: 2,
  filter: "none",
  maxRefills: 1,
  truncatePrompts: false,
  sftSteps: 0,
  sftLr: 2e-3,
  sftBatch: 16,
  checkpointEvery: 20,
  evalEvery: 0,
  evalN: 128,
  evalDepth: 0,
  reportEvery: 5,
  samplesPerStep: 4,
  progress: process.stderr.isTTY ?? false,
};

/** What each algorithm preset sets (unless the user set it). */
const PRESETS: Record<Algo, Partial<TrainOptions>> = {
  grpo: { advantage: "grpo", anchor: "off", lossAggregation: "token-mean" },
  "dr-grpo": { advantage: "dr-grpo", anchor: "off", lossAggregation: "dr-grpo" },
  anchor: { advantage: "grpo", anchor: "always", lossAggregation: "token-mean" },
  rloo: { advantage: "rloo", anchor: "off", lossAggregation: "token-mean" },
  "reinforce++": { advantage: "reinforce++", anchor: "off", lossAggregation: "token-mean" },
};

/** "auto-boolean": true, false or "auto" (decided from the model at run time). */
type Kind = "string" | "number" | "int" | "boolean" | "auto-boolean" | readonly string[];
/** Value kinds and bounds, for parsing flags/config files and for --help. */
export const OPTION_KINDS: { [K in keyof TrainOptions]: { kind: Kind; min?: number; max?: number } } = {
  model: { kind: "string" },
  task: { kind: TASKS },
  dataset: { kind: "string" },
  out: { kind: "string" },
  backend: { kind: BACKENDS },
  threads: { kind: "int", min: 0 },
  seed: { kind: "int", min: 0 },
  adapter: { kind: "string" },
  loraR: { kind: "int", min: 0 },
  loraAlpha: { kind: "number", min: 0 },
  loraTargets: { kind: "string" },
  algo: { kind: ALGOS },
  advantage: { kind: ADVANTAGES },
  anchor: { kind: ANCHOR_MODES },
  anchorCount: { kind: "int", min: 1 },
  anchorAnneal: { kind: ANCHOR_ANNEAL },
  anchorAnnealSteps: { kind: "int", min: 0 },
  steps: { kind: "int", min: 0 },
  promptsPerStep: { kind: "int", min: 1 },
  groupSize: { kind: "int", min: 2 },
  maxNewTokens: { kind: "int", min: 1 },
  temperature: { kind: "number", min: 0 },
  topP: { kind: "number", min: 1e-9, max: 1 },
  topK: { kind: "int", min: 0 },
  minP: { kind: "number", min: 0, max: 1 },
  rolloutServer: { kind: "string" },
  syncEvery: { kind: "int", min: 1 },
  syncDir: { kind: "string" },
  rolloutTimeoutMs: { kind: "int", min: 1 },
  epsLow: { kind: "number", min: 0, max: 0.999 },
  epsHigh: { kind: "number", min: 0 },
  dualClip: { kind: "number", min: 0 },
  beta: { kind: "number", min: 0 },
  kl: { kind: KLS },
  entropyCoef: { kind: "number" },
  tisCap: { kind: "number", min: 0 },
  lossAggregation: { kind: AGGREGATIONS },
  numIterations: { kind: "int", min: 1 },
  lr: { kind: "number", min: 0 },
  warmupSteps: { kind: "int", min: 0 },
  minLrRatio: { kind: "number", min: 0, max: 1 },
  weightDecay: { kind: "number", min: 0 },
  beta1: { kind: "number", min: 0, max: 0.999999 },
  beta2: { kind: "number", min: 0, max: 0.999999 },
  maxGradNorm: { kind: "number", min: 0 },
  microBatch: { kind: "int", min: 1 },
  generationBatch: { kind: "int", min: 1 },
  gradientCheckpointing: { kind: "auto-boolean" },
  rewards: { kind: "string" },
  rewardTimeoutMs: { kind: "int", min: 1 },
  rewardHeapMb: { kind: "int", min: 16 },
  curriculum: { kind: CURRICULA },
  minDepth: { kind: "int", min: 1 },
  maxDepth: { kind: "int", min: 1 },
  filter: { kind: FILTERS },
  maxRefills: { kind: "int", min: 0 },
  truncatePrompts: { kind: "boolean" },
  sftSteps: { kind: "int", min: 0 },
  sftLr: { kind: "number", min: 0 },
  sftBatch: { kind: "int", min: 1 },
  checkpointEvery: { kind: "int", min: 1 },
  evalEvery: { kind: "int", min: 0 },
  evalN: { kind: "int", min: 2 },
  evalDepth: { kind: "int", min: 0 },
  reportEvery: { kind: "int", min: 1 },
  samplesPerStep: { kind: "int", min: 0 },
  progress: { kind: "boolean" },
};

export class OptionsError extends Error {
  override name = "OptionsError";
}

/** Nearest known option name, for "did you mean" hints. */
function nearest(name: string, candidates: string[]): string | undefined {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  let best: string | undefined;
  let bestD = 4;
  for (const c of candidates) {
    const dd = dist(name.toLowerCase(), c.toLowerCase());
    if (dd < bestD) [best, bestD] = [c, dd];
  }
  return best;
}

/** Parses one value (from a flag string or a config file) into its option's type. */
export function parseOptionValue(key: keyof TrainOptions, value: unknown): unknown {
  const { kind, min, max } = OPTION_KINDS[key];
  const fail = (why: string) => new OptionsError(`option ${key}: ${why}`);
  if (Array.isArray(kind)) {
    const s = String(value);
    if (!kind.includes(s)) throw fail(`"${s}" is not one of ${kind.join(" | ")}`);
    return s;
  }
  switch (kind) {
    case "string":
      if (typeof value !== "string") throw fail(`expected a string, got ${JSON.stringify(value)}`);
      return value;
    case "auto-boolean":
    case "boolean":
      if (typeof value === "boolean") return value;
      if (kind === "auto-boolean" && value === "auto") return value;
      if (value === "true" || value === "1") return true;
      if (value === "false" || value === "0") return false;
      throw fail(`expected true or false${kind === "auto-boolean" ? ' or "auto"' : ""}, got ${JSON.stringify(value)}`);
    default: {
      const n = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN;
      if (!Number.isFinite(n)) throw fail(`expected a number, got ${JSON.stringify(value)}`);
      if (kind === "int" && !Number.isInteger(n)) throw fail(`expected an integer, got ${n}`);
      if (min !== undefined && n < min) throw fail(`must be >= ${min}, got ${n}`);
      if (max !== undefined && n > max) throw fail(`must be <= ${max}, got ${n}`);
      return n;
    }
  }
}

/** Checks an object of user options: unknown keys (with a suggestion) and value types. */
export function parseOptions(obj: Record<string, unknown>, source: string): Partial<TrainOptions> {
  const out: Partial<TrainOptions> = {};
  const keys = Object.keys(OPTION_KINDS);
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (!(k in OPTION_KINDS)) {
      const hint = nearest(k, keys);
      throw new OptionsError(`${source}: unknown option "${k}"${hint ? ` (did you mean "${hint}"?)` : ""}`);
    }
    (out as Record<string, unknown>)[k] = parseOptionValue(k as keyof TrainOptions, v);
  }
  return out;
}

/** Reads a JSON or YAML options file. */
export function loadOptionsFile(path: string): Partial<TrainOptions> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new OptionsError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new OptionsError(`config file ${path} does not parse: ${(e as Error).message}`);
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new OptionsError(`config file ${path} must hold an object of options`);
  return parseOptions(obj as Record<string, unknown>, path);
}

/**
 * Defaults, then the algorithm preset, then the user's options (config file, then flags).
 * Cross-option checks happen here.
 */
export function resolveOptions(user: Partial<TrainOptions>): TrainOptions {
  const algo = user.algo ?? DEFAULTS.algo;
  const o: TrainOptions = { ...DEFAULTS, ...PRESETS[algo], ...user };
  const err = (m: string) => {
    throw new OptionsError(m);
  };
  if (o.minDepth > o.maxDepth) err(`minDepth (${o.minDepth}) must be <= maxDepth (${o.maxDepth})`);
  if (o.anchor !== "off" && o.anchorCount >= o.groupSize)
    err(`anchorCount (${o.anchorCount}) must be < groupSize (${o.groupSize}): at least one rollout must be the policy's own`);
  if (o.beta === 0 && user.kl !== undefined && user.beta === undefined)
    err(`kl=${o.kl} has no effect with beta=0: set --beta (e.g. 0.04) to use a KL penalty`);
  if (o.topP < 1 && o.tisCap === 0 && user.tisCap === undefined) o.tisCap = 2; // truncated sampling is off-policy
  // Another engine's numerics (and stale weights with syncEvery > 1) are off-policy too.
  if (o.rolloutServer && o.tisCap === 0 && user.tisCap === undefined) o.tisCap = 2;
  for (const url of o.rolloutServer ? o.rolloutServer.split(",").map((u) => u.trim()) : []) {
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(url).protocol);
    } catch {
      // not a URL
    }
    if (!ok) err(`rolloutServer: "${url}" is not an http(s) URL; give base URLs separated by commas, e.g. http://10.0.0.2:8000,http://10.0.0.3:8000`);
  }
  if (o.dualClip !== 0 && o.dualClip <= 1) err(`dualClip must be 0 (off) or > 1, got ${o.dualClip}`);
  if (user.adapter && user.loraR) err(`--adapter ${user.adapter} carries its own rank, alpha and targets: drop --lora-r`);
  if (o.loraR === 0 && !o.adapter && (o.loraAlpha !== DEFAULTS.loraAlpha || o.loraTargets !== DEFAULTS.loraTargets))
    err(`loraAlpha / loraTargets have no effect without LoRA: set --lora-r (e.g. 16) to train an adapter`);
  try {
    parseLoraTargets(o.loraTargets);
  } catch (e) {
    err(`loraTargets: ${(e as Error).message}`);
  }
  return o;
}

/** The LoRA configuration a fresh adapter gets from the options, or null (full fine-tuning). */
export function loraConfigOf(o: Pick<TrainOptions, "loraR" | "loraAlpha" | "loraTargets">): LoraConfig | null {
  if (o.loraR === 0) return null;
  return { r: o.loraR, alpha: o.loraAlpha || 2 * o.loraR, targets: parseLoraTargets(o.loraTargets) };
}
