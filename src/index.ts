// anvil-rl: the library API. The CLI (src/cli) is a thin layer over these.

// backends
export type { Backend, Tensor, DType, BackendName, MatmulOptions, AdamWOptions, SampleOptions, GrpoLossOptions, LinearGrpoLossOptions, KlEstimator, LossAggregation } from "./backend/backend.js";
export { GRPO_STATS, numel } from "./backend/backend.js";
export { createBackend, type BackendChoice, type BackendOptions } from "./backend/index.js";
export { CpuBackend, CpuTensor } from "./backend/cpu.js";
export { selectGemm, measureGemm, decoderGemmShapes, MODEL_GEMM_SHAPES, type GemmChoice, type GemmShape, type GemmSelectOptions } from "./backend/gemm.js";

// models
export type { ModelConfig, Architecture } from "./model/types.js";
export { parameterShapes } from "./model/types.js";
export { parseConfig, loadConfig, configToJson, ConfigError } from "./model/config.js";
export { loadWeights, readSafetensors, saveSafetensors, SafetensorsError } from "./model/safetensors.js";
export { Tokenizer, fitTokenizer, saveTokenizerFiles } from "./model/tokenizer.js";
export { Model, type ForwardOptions, type Trainable } from "./model/model.js";
export { LoraAdapter, LORA_MODULES, parseLoraTargets, type LoraConfig, type LoraModule } from "./model/lora.js";
export { loadAdapter, saveAdapter, loadAdapterConfig, AdapterError } from "./model/peft.js";
export { generate, type GenerateOptions, type Generation } from "./model/generate.js";
export { AdamW, learningRate, type AdamWConfig } from "./model/optim.js";
export { saveCheckpoint, loadCheckpoint } from "./model/checkpoint.js";
export { initModel, PRESETS, type Preset } from "./model/init.js";

// tasks and rewards
export * from "./tasks/types.js";
export { generate as generateInstance, generateDataset, taskCorpus } from "./tasks/index.js";
export { judge, parseCompletion, type Judgement } from "./tasks/verify.js";
export { readDataset, writeDataset, parseDataset, DatasetError } from "./tasks/dataset.js";
export { RewardPool, type ScoreResult } from "./rewards/pool.js";
export { BUILTIN_REWARDS, parseRewardSpecs, type RewardSpec, type RewardFn } from "./rewards/rewards.js";

// RL
export { DEFAULTS, OPTIONS, resolveOptions, loadOptionsFile, OptionsError, type TrainOptions, type OptionSpec, type Algo } from "./rl/options.js";
export { computeAdvantages } from "./rl/advantages.js";
export { anchorsForGroup, anchorProbability, type AnchorConfig } from "./rl/anchor.js";
export { Policy } from "./rl/policy.js";
export { evaluate, type EvalResult } from "./rl/eval.js";
export { runSft } from "./rl/sft.js";
export { scoreTokens, supervisedGradient, policyGradient } from "./rl/step.js";
export { runTraining, type RunResult, type RunHooks } from "./rl/run.js";
// preference optimization: runDpo is `anvil dpo`; trainPreferences trains on pairs in memory
export { runDpo, type DpoRunOptions, type DpoResult, type DpoHooks } from "./rl/dpo.js";
export { trainPreferences, preferenceStep, pairSchedule, type PreferenceTrainOptions, type PreferenceStepMetrics } from "./rl/preference-train.js";
export { pairLoss, PREFERENCE_LOSSES, type PreferenceLoss, type PreferenceLossConfig, type PairLogps, type PairLoss } from "./rl/preference-loss.js";
export { PREFERENCE_OPTIONS, resolvePreferenceOptions, type PreferenceOptions } from "./rl/preference-options.js";
export { readPreferencePairs, parsePreferencePairs, checkPreferencePairs, encodePairs, type PreferencePair, type PreferenceData, type TokenPair } from "./rl/preference-data.js";
export { computeReferenceLogps, type ReferenceLogps } from "./rl/preference-ref.js";
export { followTraining } from "./rl/run-follower.js";
export { startTraining, TrainingJob } from "./rl/job.js";
export type { StepMetrics } from "./rl/trainer.js";

// scale-out: serving and rollouts from inference servers
export { ServeEngine, type ServeJob, type ServeResult } from "./serve/engine.js";
export { createServeServer, WEIGHT_VERSION_HEADER, type ServeOptions } from "./serve/server.js";
export { RolloutServer, RolloutServerError } from "./rl/rollout-server.js";
export { RolloutFleet, type FleetOptions } from "./rl/rollout-fleet.js";
export type { RolloutSource } from "./rl/policy.js";
// data parallel: joinWorld(resolveDistSpec(flags)) then runTraining(opts, hooks, world) on rank 0,
// followTraining(world) on the others
export { SoloCollective, type Collective, type ReduceOp } from "./distributed/collective.js";
export { TcpCollective, type TcpOptions } from "./distributed/tcp.js";
export { joinWorld, resolveDistSpec, launchLocal, type DistSpec, type DistFlags } from "./distributed/launch.js";
