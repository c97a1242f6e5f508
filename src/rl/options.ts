// Every training hyperparameter, in one table: documented where declared, with its type,
// default, --help line and accepted range. The TrainOptions type, DEFAULTS, the parser of flags
// and config files (JSON/YAML) and the flags of `anvil train` all come from it, and so do the
// flags that sft, eval and generate share with it: a new option is one entry.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { BACKEND_CHOICES, KL_ESTIMATORS, LOSS_AGGREGATIONS } from "../backend/backend.js";
import { TASK_NAMES } from "../tasks/types.js";
import { parseLoraTargets, type LoraConfig } from "../model/lora.js";
import { FROZEN_DTYPES } from "../model/model.js";
import { PRESET_SFT_LR } from "../model/init.js";

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

/** How a value is parsed from a flag or a config file. A list: one of its strings.
 * "auto-boolean": true, false or "auto" (decided from the model at run time). */
type Kind = "string" | "number" | "int" | "boolean" | "auto-boolean" | readonly string[];
interface Range {
  min?: number;
  max?: number;
  /** What --help shows as the default when the value itself would mislead (lr 0 = auto). */
  shownDefault?: string;
}
/** One option: how it parses, its default, its one line of --help, its accepted range. */
export interface OptionSpec<T> extends Range {
  kind: Kind;
  default: T;
  help: string;
}
// Spec makers, shared with other commands' tables (preference-options.ts).
export const text = (def: string, help: string): OptionSpec<string> => ({ kind: "string", default: def, help });
export const flag = (def: boolean, help: string): OptionSpec<boolean> => ({ kind: "boolean", default: def, help });
export const autoFlag = (def: boolean | "auto", help: string): OptionSpec<boolean | "auto"> => ({ kind: "auto-boolean", default: def, help });
export const int = (def: number, help: string, range?: Range): OptionSpec<number> => ({ kind: "int", default: def, help, ...range });
export const num = (def: number, help: string, range?: Range): OptionSpec<number> => ({ kind: "number", default: def, help, ...range });
export const oneOf = <C extends readonly string[]>(choices: C, def: C[number], help: string): OptionSpec<C[number]> => ({ kind: choices, default: def, help });
/** A table of options: name -> spec (OPTIONS, or another command's own table). */
export type OptionTable = Record<string, OptionSpec<unknown>>;

export const OPTIONS = {
  // ---- what to train -------------------------------------------------------------------
  /** Model directory (HF config.json + safetensors + tokenizer.json). Empty: make the tiny
   * default with `init-model --preset tiny` and warm it up with SFT first. */
  model: text("", "model directory (HF format); default: make the tiny model and warm it up with SFT"),
  /** Task generator: graphla (linear algebra over dish prices) or graphli (logical inference). */
  task: oneOf(TASK_NAMES, "graphli", "task generator"),
  /** Optional JSONL dataset ({prompt, answer, ...} per line) used instead of generated prompts. */
  dataset: text("", "JSONL dataset ({prompt, answer} per line) instead of generated prompts"),
  /** Run directory: config.json, metrics.jsonl, samples.jsonl, checkpoints/, report.html. */
  out: text("runs/anvil", "run directory (metrics.jsonl, checkpoints/, report.html)"),
  /** Compute backend; auto tries cuda, then webgpu, then cpu. */
  backend: oneOf(BACKEND_CHOICES, "auto", "compute backend (auto: cuda, then a hardware webgpu adapter, then cpu)"),
  /** CPU threads (0 = all cores). */
  threads: int(0, "CPU threads (0 = all cores)", { min: 0 }),
  /** Seed for data, sampling and initialisation: same seed, same run. */
  seed: int(1, "seed for data, sampling and init: same seed, same run", { min: 0 }),

  // ---- adapters (LoRA, Hu et al. 2021; PEFT's layout on disk) ---------------------------
  /** A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to start
   * from and keep training; its rank, alpha and targets are used. Implies LoRA training. */
  adapter: text("", "PEFT LoRA adapter directory to start from (implies LoRA; its r, alpha and targets are used)"),
  /** LoRA rank r; 0 = full fine-tuning (every parameter trained, 16 bytes per parameter with
   * AdamW). With r > 0 the base weights are frozen and only the adapter (A, B) is trained,
   * checkpoints hold the adapter, and the KL reference is the base without it (no second copy).
   * Typical: 8-64. */
  loraR: int(0, "LoRA rank (0 = full fine-tuning); base frozen, only the adapter trained and saved", { min: 0 }),
  /** LoRA alpha: the update is (alpha / r) * B A. 0 = 2 * r (a common choice, e.g. Unsloth's). */
  loraAlpha: num(0, "LoRA alpha: update = (alpha / r) B A (0 = 2r)", { min: 0 }),
  /** Projections carrying adapters: any of q,k,v,o,gate,up,down (or q_proj ..., all-linear). */
  loraTargets: text("q,k,v,o,gate,up,down", "projections with adapters: any of q,k,v,o,gate,up,down"),
  /** Storage of the frozen weight matrices under LoRA (every projection, the embedding, the
   * LM head; not the RMSNorm weights): bf16 halves their memory (Qwen3-0.6B: 2.4 GB -> 1.2 GB)
   * while every product still accumulates in f32 (the kernels widen bf16 tiles to f32). The
   * adapter, gradients and optimizer state stay f32. Without LoRA nothing is frozen and this has
   * no effect. Numerically the model is then the f32 model with its weights rounded to bf16
   * (what a bf16 checkpoint holds anyway). Every backend stores 2 bytes per element (webgpu packs
   * two per 32-bit word). */
  frozenDtype: oneOf(FROZEN_DTYPES, "bf16", "storage of the frozen base weights under LoRA (bf16 halves them; math stays f32)"),

  // ---- algorithm -----------------------------------------------------------------------
  /** Preset: grpo (Shao et al. 2024), dr-grpo (Liu et al. 2025: no std, no length bias),
   * anchor (GRPO + ground-truth trajectory injection), rloo, reinforce++. It sets
   * `advantage`, `lossAggregation` and `anchor` unless those are given explicitly. */
  algo: oneOf(ALGOS, "anchor", "preset: sets advantage, loss aggregation and anchor unless given"),
  /** Advantage estimator: grpo (r-mean)/(std+1e-4), dr-grpo (r-mean), rloo (leave-one-out
   * mean), reinforce++ (group mean, then batch-normalised). */
  advantage: oneOf(ADVANTAGES, "grpo", "advantage estimator"),
  /** Anchor (arXiv 2511.09222): replace `anchorCount` of the G rollouts of a group by the
   * task's ground-truth trajectory. always (the paper's method, the default of algo=anchor):
   * every group; all-fail: only groups where every rollout failed (a correct "unknown" on an
   * unanswerable item is a pass); off. A trajectory longer than maxNewTokens is not injected
   * and is counted in the metric anchor_too_long. */
  anchor: oneOf(ANCHOR_MODES, "always", "inject ground-truth trajectories: in every group (the paper), only in all-fail groups, or off"),
  /** Ground-truth trajectories per group when Anchor applies (1 .. groupSize-1). */
  anchorCount: int(1, "ground-truth trajectories per anchored group", { min: 1 }),
  /** Anchor annealing: probability of injecting decays from 1 to 0 over `anchorAnnealSteps`. */
  anchorAnneal: oneOf(ANCHOR_ANNEAL, "none", "decay the anchoring probability from 1 to 0"),
  /** Steps over which Anchor anneals (0 = the whole run). */
  anchorAnnealSteps: int(0, "annealing horizon in steps (0 = the whole run)", { min: 0 }),

  // ---- rollouts ------------------------------------------------------------------------
  /** Optimizer steps. */
  steps: int(100, "RL optimizer steps", { min: 0 }),
  /** Prompts per step (groups). The batch is promptsPerStep * groupSize sequences. */
  promptsPerStep: int(8, "prompts (groups) per step", { min: 1 }),
  /** Rollouts per prompt, G. Larger G gives better baselines at linear cost. */
  groupSize: int(8, "rollouts per prompt (G)", { min: 2 }),
  /** Longest completion, in tokens. */
  maxNewTokens: int(128, "longest completion in tokens (for the embedded default model, when not given: the longest ground-truth completion at --max-depth, plus 8)", { min: 1 }),
  /** Sampling temperature for rollouts (1 = the policy itself). */
  temperature: num(1, "rollout sampling temperature", { min: 0 }),
  /** Nucleus sampling mass (1 = off). Off-policy when < 1: enable tisCap. */
  topP: num(1, "nucleus sampling mass (1 = off)", { min: 1e-9, max: 1 }),
  /** Top-k sampling (0 = off). */
  topK: int(0, "top-k sampling (0 = off)", { min: 0 }),
  /** Min-p sampling (0 = off). */
  minP: num(0, "min-p sampling (0 = off)", { min: 0, max: 1 }),
  /** Comma-separated base URLs of OpenAI-compatible servers (vLLM, SGLang, `anvil serve`) to
   * draw rollouts from instead of generating in process ("" = in process). Groups are spread
   * over them; a server that fails or times out has its requests retried on the others. Their
   * per-token log-probs feed truncated importance sampling (tisCap, set to 2 unless given). */
  rolloutServer: text("", "comma-separated OpenAI-compatible servers (vLLM, SGLang, anvil serve) to draw rollouts from, e.g. http://10.0.0.2:8000,http://10.0.0.3:8000"),
  /** Publish the learner's weights (its LoRA adapter under LoRA) to the rollout servers every
   * N optimizer steps. With N > 1 rollouts lag the learner by up to N-1 updates (off-policy:
   * keep tisCap on). Full weights go to /update_weights_from_disk (SGLang, anvil serve), an
   * adapter to /v1/load_lora_adapter (vLLM, anvil serve). */
  syncEvery: int(1, "publish weights (the adapter under LoRA) to the rollout servers every N steps", { min: 1 }),
  /** Directory the published weights are written to (each version atomically, as weights-vN,
   * or as a PEFT adapter directory adapter-vN under LoRA); every server must be able to read
   * it. "" = <out>/published. */
  syncDir: text("", "directory the servers load published weights or adapters from (default: <out>/published)"),
  /** Per-request timeout of a rollout server; a slower server counts as failed. */
  rolloutTimeoutMs: int(120_000, "per-request timeout of a rollout server (a slower one counts as failed)", { min: 1 }),

  // ---- loss ----------------------------------------------------------------------------
  /** PPO clip lower bound: ratio >= 1 - epsLow. */
  epsLow: num(0.2, "PPO clip: ratio >= 1 - epsLow", { min: 0, max: 0.999 }),
  /** PPO clip upper bound: ratio <= 1 + epsHigh (DAPO's clip-higher uses 0.28). */
  epsHigh: num(0.28, "PPO clip: ratio <= 1 + epsHigh (clip-higher)", { min: 0 }),
  /** Dual clip constant c for negative advantages (Ye et al. 2020); 0 = off, usually 3. */
  dualClip: num(3, "dual-clip constant for negative advantages (0 = off)", { min: 0 }),
  /** KL coefficient against the frozen initial policy (0 = no reference model kept). */
  beta: num(0, "KL coefficient against the frozen initial policy (0 = off)", { min: 0 }),
  /** KL estimator (Schulman 2020): k1 log-ratio, k2 squared, k3 unbiased low-variance. */
  kl: oneOf(KL_ESTIMATORS, "k3", "KL estimator"),
  /** Entropy bonus coefficient (loss -= entropyCoef * H). */
  entropyCoef: num(0, "entropy bonus coefficient"),
  /** Truncated importance-sampling cap for rollout/trainer mismatch (0 = off). */
  tisCap: num(0, "truncated importance-sampling cap (0 = off)", { min: 0 }),
  /** How token losses are combined: token-mean (DAPO), seq-mean-token-mean (original GRPO),
   * seq-mean-token-sum, dr-grpo (sum / (B * maxNewTokens)). */
  lossAggregation: oneOf(LOSS_AGGREGATIONS, "token-mean", "how token losses are averaged"),
  /** Policy updates per batch (mu). > 1 makes the ratio and clipping matter. */
  numIterations: int(1, "policy updates per batch (mu)", { min: 1 }),

  // ---- optimizer -----------------------------------------------------------------------
  /** Peak learning rate (AdamW); 0 = by model size: 3e-4 under 10M parameters (the tiny
   * and small presets), 1e-5 under 1B, 1e-6 above (TRL's default for real LLMs). */
  lr: num(0, "peak learning rate (0 = by model size: 3e-4 under 10M parameters, 1e-5 under 1B, else 1e-6)", { min: 0, shownDefault: "auto" }),
  /** Linear warmup steps. */
  warmupSteps: int(5, "linear warmup steps", { min: 0 }),
  /** Cosine decay floor, as a fraction of lr. */
  minLrRatio: num(0.1, "cosine floor as a fraction of lr", { min: 0, max: 1 }),
  weightDecay: num(0, "AdamW decoupled weight decay", { min: 0 }),
  beta1: num(0.9, "AdamW beta1", { min: 0, max: 0.999999 }),
  beta2: num(0.99, "AdamW beta2", { min: 0, max: 0.999999 }),
  /** Global grad-norm clip (0 = off). */
  maxGradNorm: num(1, "global grad-norm clip (0 = off)", { min: 0 }),
  /** Sequences per forward/backward pass (TRL's per-device batch): bounds activation memory,
   * which grows linearly with it; the gradient is the same for any value (each micro-batch's
   * loss is weighted by its share of the batch). */
  microBatch: int(16, "sequences per forward/backward pass (activation memory grows with it; same gradient)", { min: 1 }),
  /** Rollouts decoded together: the KV cache (layers * rows * length * 2 * kvDim floats) grows
   * linearly with it, decoding speed too on CPUs (bigger matmuls). Rollouts do not depend on it
   * (each row's sampling is seeded by its own key). */
  generationBatch: int(64, "rollouts decoded together (KV-cache memory grows with it; same rollouts)", { min: 1 }),
  /** Recompute each block's activations in backward, keeping only block inputs: activation
   * memory falls from about L blocks' worth to one, for about one extra forward of compute;
   * gradients are identical. auto: on under LoRA for models over 100M parameters, else off. */
  gradientCheckpointing: autoFlag("auto", "recompute block activations in backward (default auto: on under LoRA above 100M parameters)"),

  // ---- rewards -------------------------------------------------------------------------
  /** Reward terms with weights, e.g. "correct" (the default) or "honesty:1,format:0.1".
   * Built-ins: correct (the paper's outcome reward: 1 if correct, abstaining is correct only
   * on unanswerable items, else 0), honesty (+1 correct, 0 abstain on an answerable item,
   * -1 wrong; makes "unknown" the safe answer for a weak policy), format (1 if the output
   * parses and is not an abstention on an answerable item). A term may also be the path of a
   * .js/.mjs module exporting `reward(completion, instance)`. Table: src/rewards/rewards.ts. */
  rewards: text("correct", 'reward terms with weights, e.g. "correct" (default), "honesty:1,format:0.1,./my-reward.mjs:0.5"'),
  /** Per-call reward timeout; a hanging or throwing reward costs that sample, not the run. */
  rewardTimeoutMs: int(2000, "per-call reward timeout (a hanging reward costs that sample)", { min: 1 }),
  /** Heap limit of each reward worker thread, in MB (V8's old generation; >= 16). A reward
   * module that exhausts it costs that sample (0 for its term, counted in reward_failures);
   * its worker is replaced and the run goes on. Without a limit such a module aborts the
   * whole trainer. Raise it for reward modules that legitimately hold large data. */
  rewardHeapMb: int(256, "heap limit of each reward worker in MB (a reward that exhausts it costs that sample)", { min: 16 }),

  // ---- data ----------------------------------------------------------------------------
  /** Curriculum over depth: fixed (minDepth..maxDepth uniformly), linear (max depth grows
   * over the run), adaptive (raise depth when accuracy > 0.7, lower when < 0.3). */
  curriculum: oneOf(CURRICULA, "fixed", "depth curriculum"),
  minDepth: int(1, "smallest derivation depth", { min: 1 }),
  maxDepth: int(2, "largest derivation depth", { min: 1 }),
  /** Group filter: zero-std drops groups whose rewards are all equal (no signal);
   * balanced keeps groups with pass rate strictly in (0,1); both refill from new prompts. */
  filter: oneOf(FILTERS, "none", "drop groups without reward variance (zero-std) or with pass rate 0 or 1 (balanced), refilling"),
  /** Extra generation rounds allowed per step to refill filtered groups. */
  maxRefills: int(1, "extra generation rounds per step to refill filtered groups", { min: 0 }),
  /** Dataset prompts longer than the model's context minus maxNewTokens: an error naming the
   * lines (false, the default), or cut to their last tokens (true; the question comes last in
   * a prompt, as in TRL's left truncation), with one log line saying how many were cut. */
  truncatePrompts: flag(false, "cut dataset prompts that do not fit the context (with --max-new-tokens) to their last tokens, instead of failing"),

  // ---- SFT warm start ------------------------------------------------------------------
  /** SFT steps on ground-truth traces before RL (0 = none; the tiny default uses 400). */
  sftSteps: int(0, "SFT warm-start steps before RL (the tiny default uses 400)", { min: 0 }),
  sftLr: num(2e-3, `SFT learning rate (the embedded default model, made with no --model: ${PRESET_SFT_LR})`, { min: 0 }),
  sftBatch: int(16, "SFT batch size", { min: 1 }),

  // ---- bookkeeping ---------------------------------------------------------------------
  /** Checkpoint every N steps (atomic; the last good one is kept on NaN). */
  checkpointEvery: int(20, "checkpoint every N steps", { min: 1 }),
  /** Held-out evaluation every N steps (0 = only at the end). */
  evalEvery: int(0, "held-out eval every N steps (0 = start and end only)", { min: 0 }),
  /** Held-out evaluation size (half unanswerable). */
  evalN: int(128, "held-out eval size", { min: 2 }),
  /** Depth of the held-out items (0 = uniform over minDepth..maxDepth, like training). */
  evalDepth: int(0, "depth of the held-out items (0 = uniform over min..max depth)", { min: 0 }),
  /** Rewrite report.html every N steps. */
  reportEvery: int(5, "rewrite report.html every N steps", { min: 1 }),
  /** Samples logged to samples.jsonl per step. */
  samplesPerStep: int(4, "rollouts logged to samples.jsonl per step", { min: 0 }),
  /** Progress bar on stderr (auto: when stderr is a TTY). */
  progress: flag(process.stderr.isTTY ?? false, "progress bar on stderr"),
};

/** The options of a training run, typed from the table above (each one documented there). */
export type TrainOptions = { [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K] extends OptionSpec<infer T> ? T : never };
export type OptionName = keyof TrainOptions;
export const OPTION_NAMES = Object.keys(OPTIONS) as OptionName[];

export const DEFAULTS = Object.fromEntries(OPTION_NAMES.map((k) => [k, OPTIONS[k].default])) as TrainOptions;

/** What each algorithm preset sets (unless the user set it). */
const PRESETS: Record<Algo, Partial<TrainOptions>> = {
  grpo: { advantage: "grpo", anchor: "off", lossAggregation: "token-mean" },
  "dr-grpo": { advantage: "dr-grpo", anchor: "off", lossAggregation: "dr-grpo" },
  anchor: { advantage: "grpo", anchor: "always", lossAggregation: "token-mean" },
  rloo: { advantage: "rloo", anchor: "off", lossAggregation: "token-mean" },
  "reinforce++": { advantage: "reinforce++", anchor: "off", lossAggregation: "token-mean" },
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
export function parseOptionValue(key: string, value: unknown, table: OptionTable = OPTIONS): unknown {
  const { kind, min, max } = table[key]!;
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
export function parseOptions(obj: Record<string, unknown>, source: string): Partial<TrainOptions>;
export function parseOptions<T>(obj: Record<string, unknown>, source: string, table: OptionTable): Partial<T>;
export function parseOptions(obj: Record<string, unknown>, source: string, table: OptionTable = OPTIONS): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (!(k in table)) {
      const hint = nearest(k, Object.keys(table));
      throw new OptionsError(`${source}: unknown option "${k}"${hint ? ` (did you mean "${hint}"?)` : ""}`);
    }
    out[k] = parseOptionValue(k, v, table);
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
  checkLoraOptions(o, user);
  return o;
}

type LoraOptions = Pick<TrainOptions, "adapter" | "loraR" | "loraAlpha" | "loraTargets">;

/** The LoRA options' cross-checks, for every training command that takes them. */
export function checkLoraOptions(o: LoraOptions, user: Partial<LoraOptions>): void {
  const err = (m: string) => {
    throw new OptionsError(m);
  };
  if (user.adapter && user.loraR) err(`--adapter ${user.adapter} carries its own rank, alpha and targets: drop --lora-r`);
  if (o.loraR === 0 && !o.adapter && (o.loraAlpha !== DEFAULTS.loraAlpha || o.loraTargets !== DEFAULTS.loraTargets))
    err(`loraAlpha / loraTargets have no effect without LoRA: set --lora-r (e.g. 16) to train an adapter`);
  try {
    parseLoraTargets(o.loraTargets);
  } catch (e) {
    err(`loraTargets: ${(e as Error).message}`);
  }
}

/** The LoRA configuration a fresh adapter gets from the options, or null (full fine-tuning). */
export function loraConfigOf(o: Pick<TrainOptions, "loraR" | "loraAlpha" | "loraTargets">): LoraConfig | null {
  if (o.loraR === 0) return null;
  return { r: o.loraR, alpha: o.loraAlpha || 2 * o.loraR, targets: parseLoraTargets(o.loraTargets) };
}
