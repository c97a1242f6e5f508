// A training run on disk: options -> backend -> model (made and warmed up if absent) ->
// RL steps with metrics, samples, atomic checkpoints, report and held-out eval.
//
// Run directory
//   anvil-run.json         marker: this directory is an Anvil run (see run-dir.ts)
//   anvil.lock             pid and host of the process training here; taken before any compute
//   config.json            resolved options (what --resume reads back)
//   metrics.jsonl          one object per step (SFT steps carry sft_step/sft_loss)
//   samples.jsonl          a few rollouts per step
//   checkpoints/step-N/    model (or LoRA adapter, PEFT layout) + optimizer + trainer state, atomically
//   sft-model/             the SFT-warmed model (or adapter) when the run made one
//   report.html            SVG curves, rewritten every reportEvery steps
//
// Order: options, then preflight of every input (dataset, model and prompt lengths, reward
// modules, backend), then the run directory is claimed (created, locked), then compute. A bad
// input fails loudly before anything is written; a second process fails on the lock.
//
// Data parallel: this is rank 0's part. It alone touches the run directory; once the run is set
// up (and the first eval done) it sends the options and its state to the other ranks
// (run-follower.ts), then every step is the same program on every rank (trainer.ts).
//
// Determinism: every random draw is a function of (seed, step, index), and checkpoints
// restore parameters and optimizer moments bit for bit, so a run resumed from step N
// reproduces the uninterrupted run's metrics (timings aside).
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Backend } from "../backend/backend.js";
import { createBackend } from "../backend/index.js";
import { loadCheckpoint, loadOptimizerState, readTrainerState, removeStaleSaves, saveCheckpoint } from "../model/checkpoint.js";
import { ADAPTER_CONFIG_FILE } from "../model/peft.js";
import { loadConfig } from "../model/config.js";
import { PRESET_SFT_LR, initModel } from "../model/init.js";
import { Model } from "../model/model.js";
import { AdamW } from "../model/optim.js";
import { Tokenizer } from "../model/tokenizer.js";
import { writeReport } from "../report/report.js";
import { readDatasetLines } from "../tasks/dataset.js";
import { completionFor, generate as generateInstance, generateDataset, taskTokenizerInput } from "../tasks/index.js";
import type { Instance, TaskName } from "../tasks/types.js";
import { writeFileAtomicSync } from "../util/atomic.js";
import { readJsonFileSync } from "../util/json-file.js";
import { Progress } from "../util/progress.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import { evaluate, type EvalResult } from "./eval.js";
import { checkPrompts } from "./inputs.js";
import { loraConfigOf, OptionsError, resolveOptions, type TrainOptions } from "./options.js";
import { encodeCompletion, Policy } from "./policy.js";
import { claimRunDir, requireRunDir, type RunDirClaim } from "./run-dir.js";
import { RolloutFleet } from "./rollout-fleet.js";
import { rewindLogs } from "./run-logs.js";
import { createScorer, type Scorer } from "./scoring.js";
import { runSft, sftStream } from "./sft.js";
import { NonFiniteLossError, Trainer, type Reference, type StepMetrics } from "./trainer.js";
import { broadcastJson, SoloCollective, type Collective } from "../distributed/collective.js";
import { shareOf } from "../distributed/share.js";
import { NcclCollective, withDeviceCollective } from "../distributed/nccl.js";
import { syncFromRankZero } from "../distributed/sync.js";
import { prepareForTraining } from "./train-setup.js";

export interface RunHooks {
  /** A line of human-readable log (stderr in the CLI). */
  log?: (line: string) => void;
  onStep?: (m: StepMetrics) => void;
  onEval?: (step: number, r: EvalResult) => void;
}

export interface RunResult {
  runDir: string;
  steps: number;
  initialEval: EvalResult | null;
  finalEval: EvalResult;
  lastCheckpoint: string | null;
}

interface TrainerState {
  step: number;
  curriculum?: { level: number };
}

/** What rank 0 tells the other data-parallel ranks once the run is set up. */
export interface RunSetup {
  options: TrainOptions;
  startStep: number;
  curriculum: { level: number } | null;
  dataset: Instance[] | null;
  hasRef: boolean;
}

/** Whether a held-out eval (rank 0 only: the others wait for it) follows 0-based step `step`. */
export const evalAfter = (o: TrainOptions, step: number): boolean => o.evalEvery > 0 && (step + 1) % o.evalEvery === 0 && step + 1 < o.steps;

/** Steps between SFT log lines / metrics records. */
const SFT_LOG_EVERY = 10;

/** The newest complete checkpoint of a run, or null. */
export function latestCheckpoint(runDir: string): { dir: string; step: number } | null {
  const root = join(runDir, "checkpoints");
  if (!existsSync(root)) return null;
  const steps = readdirSync(root)
    .map((d) => /^step-(\d+)$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(root, m[0], "trainer_state.json")))
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  return steps.length ? { dir: join(root, `step-${steps[0]}`), step: steps[0] } : null;
}

/**
 * Claims a run directory for a run (train, dpo): takes it (run-dir.ts), removes what an
 * interrupted save left, and finds the checkpoint to resume from; a fresh run into a directory
 * that already holds one is refused. On failure the claim is discarded.
 */
export async function openRunDir(runDir: string, out: string, resume: boolean, log: (l: string) => void): Promise<{ claim: RunDirClaim; ckpt: { dir: string; step: number } | null }> {
  const claim = claimRunDir(runDir, { resume, log });
  try {
    for (const root of [runDir, join(runDir, "checkpoints")])
      for (const d of await removeStaleSaves(root)) log(`anvil: removed ${join(root, d)}, left by an interrupted save`);
    const ckpt = resume ? latestCheckpoint(runDir) : null;
    if (!resume && latestCheckpoint(runDir)) throw new OptionsError(`${runDir} already holds a run: pass --resume ${out} to continue it, or choose another --out`);
    mkdirSync(join(runDir, "checkpoints"), { recursive: true });
    return { claim, ckpt };
  } catch (e) {
    claim.discard();
    throw e;
  }
}

/** Longest ground-truth completion (tokens, with the end token) of 400 items at `depth`, plus 8 tokens of slack. */
export function traceBudget(tokenizer: Tokenizer, task: TaskName, depth: number): number {
  const items = generateDataset(task, { n: 400, depth, seed: 0xb0d9e7 });
  return Math.max(...items.map((i) => encodeCompletion(tokenizer, completionFor(i)).length)) + 8;
}

/** Prompt source: the user's dataset (shuffled per step) or the task generator. */
export function promptSource(o: TrainOptions, dataset: Instance[] | null): (step: number, i: number, depth: number) => Instance {
  if (dataset) return (step, i) => dataset[mixSeed(o.seed, step, i, PURPOSE.prompt) % dataset.length];
  return (step, i, depth) => generateInstance(o.task as TaskName, { depth, seed: mixSeed(o.seed, step, i, PURPOSE.prompt) });
}

/** Held-out set, disjoint in seed space from training prompts. */
export function heldOut(task: TaskName, n: number, minDepth: number, maxDepth: number, seed: number): Instance[] {
  return generateDataset(task, { n, depth: [minDepth, maxDepth], seed: mixSeed(seed, 0x5eed, PURPOSE.eval) });
}

/** Makes the embedded default model (tiny Qwen3-style, tokenizer fitted to the task). */
export async function makeDefaultModel(dir: string, task: TaskName, seed: number, log: (l: string) => void): Promise<void> {
  if (existsSync(join(dir, "config.json"))) return;
  log(`anvil: no --model given: making the tiny default in ${dir}`);
  const r = await initModel({ preset: "tiny", ...taskTokenizerInput(task), out: dir, seed });
  log(`anvil: tiny model with ${(r.numParams / 1e6).toFixed(2)}M parameters, vocabulary ${r.config.vocabSize}`);
}

/**
 * A training run; with a collective of several ranks, this is rank 0's part (the others run
 * followTraining): it alone owns the run directory, and logs whole-batch metrics.
 */
export async function runTraining(user: Partial<TrainOptions> & { resume?: string }, hooks: RunHooks = {}, dp: Collective = new SoloCollective()): Promise<RunResult> {
  if (dp.rank !== 0) throw new Error(`runTraining is rank 0's part of a run; rank ${dp.rank} runs followTraining`);
  const log = hooks.log ?? ((l: string) => process.stderr.write(l + "\n"));
  // ---- options (resume reads the run's own config back; explicit options override it)
  let o: TrainOptions;
  const { resume, ...userOpts } = user;
  if (resume) {
    requireRunDir(resume);
    const cfgPath = join(resume, "config.json");
    if (!existsSync(cfgPath)) throw new OptionsError(`--resume ${resume}: the run has no config.json (it was stopped before it started); start it again with --out ${resume}`);
    const saved = readJsonFileSync<TrainOptions>(cfgPath);
    o = resolveOptions({ ...saved, ...userOpts, out: resume });
  } else {
    o = resolveOptions(userOpts);
  }
  shareOf(o.promptsPerStep, 0, dp.worldSize); // every rank needs a group: fail before any work
  if (dp.worldSize > 1 && (loraConfigOf(o) !== null || o.adapter !== ""))
    throw new OptionsError("LoRA adapters with several data-parallel ranks are not supported yet: train the adapter in one process");
  if (dp.worldSize > 1 && o.rolloutServer)
    throw new OptionsError("--rollout-server with several data-parallel ranks is not supported yet: run one learner process (the servers already parallelise the rollouts)");
  const runDir = resolve(o.out);
  // The tiny default lives in the run directory; it is made once the directory is ours.
  const defaultModel = join(runDir, "init-model");
  const madeDefault = !o.model || resolve(o.model) === defaultModel;
  if (!o.model) {
    o.model = defaultModel;
    if (user.sftSteps === undefined && !resume) o.sftSteps = 400;
  }

  // ---- preflight: every input, before the run directory is touched or compute starts
  const datasetLines = o.dataset ? await readDatasetLines(o.dataset) : null;
  const evalSet = heldOut(o.task as TaskName, o.evalN, o.evalDepth || o.minDepth, o.evalDepth || o.maxDepth, o.seed);
  const checkInputs = async (): Promise<{ tokenizer: Tokenizer; dataset: Instance[] | null }> => {
    const config = await loadConfig(o.model);
    const tokenizer = await Tokenizer.load(o.model);
    return { tokenizer, dataset: checkPrompts(o, datasetLines, evalSet, tokenizer, config.maxPositionEmbeddings, log) };
  };
  let inputs = madeDefault ? null : await checkInputs();
  let backend: Backend | null = null;
  let scorer: Scorer | null = null;
  let claim: RunDirClaim | null = null;
  let model: Model | null = null;
  let refModel: Model | null = null;
  let ref: Reference | null = null;
  let optimizer: AdamW | null = null;
  let fleet: RolloutFleet | null = null;
  let started = false; // config.json written: from here on the directory holds a run
  try {
    backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    scorer = await makeScorer(o, log);

    // ---- the run directory: ours alone from here on
    let ckpt: { dir: string; step: number } | null;
    ({ claim, ckpt } = await openRunDir(runDir, o.out, !!resume, log));
    if (madeDefault) {
      await makeDefaultModel(o.model, o.task as TaskName, o.seed, log);
      inputs = await checkInputs();
    }
    const { tokenizer, dataset } = inputs!;
    // The embedded default with no --max-new-tokens: room for the longest ground-truth completion
    // at --max-depth (its SFT and Anchor use them whole; GraphLI's sweeps outgrow a fixed 128).
    if (madeDefault && user.maxNewTokens === undefined && !resume && !o.dataset) o.maxNewTokens = traceBudget(tokenizer, o.task as TaskName, o.maxDepth);
    if (madeDefault && user.sftLr === undefined && !resume) o.sftLr = PRESET_SFT_LR;
    writeFileAtomicSync(join(runDir, "config.json"), JSON.stringify(o, null, 2) + "\n");
    started = true;

    // ---- model: checkpoint (resume) > SFT output > the given model. Under LoRA the base is
    // always the given model and those directories hold adapters.
    const lora = loraConfigOf(o);
    const useLora = lora !== null || o.adapter !== "";
    const sftDir = join(runDir, "sft-model");
    const sftDone = existsSync(join(sftDir, useLora ? ADAPTER_CONFIG_FILE : "config.json"));
    const setup = (adapter: string) => ({ adapter, lora, seed: o.seed, gradientCheckpointing: o.gradientCheckpointing, frozenDtype: o.frozenDtype });
    let startStep = 0;
    let trainerState: TrainerState | null = null;
    if (ckpt) {
      const c = await loadCheckpoint(useLora ? o.model : ckpt.dir, backend, { frozenDtype: useLora ? o.frozenDtype : "f32" });
      model = c.model;
      await prepareForTraining(model, setup(useLora ? ckpt.dir : ""), log);
      trainerState = (await readTrainerState(ckpt.dir)) as TrainerState | null;
      startStep = ckpt.step;
      rewindLogs(runDir, startStep, true, log);
      log(`anvil: resuming ${runDir} from step ${startStep}`);
      optimizer = makeOptimizer(model, o);
      const state = await loadOptimizerState(ckpt.dir);
      if (state) optimizer.loadState(state);
    } else {
      rewindLogs(runDir, 0, sftDone, log);
      model = (await loadCheckpoint(sftDone && !useLora ? sftDir : o.model, backend, { frozenDtype: useLora ? o.frozenDtype : "f32" })).model;
      await prepareForTraining(model, setup(sftDone && useLora ? sftDir : o.adapter), log);
      if (o.sftSteps > 0 && !sftDone) {
        const warm = new Policy(model, tokenizer, null, o.microBatch, o.generationBatch);
        const bar = new Progress("sft  ", o.sftSteps, o.progress);
        const t0 = performance.now();
        await runSft(warm, {
          steps: o.sftSteps,
          lr: o.sftLr,
          ...sftStream(o.task as TaskName, { seed: o.seed, minDepth: o.minDepth, maxDepth: o.maxDepth, items: o.sftBatch, sheets: 0 }),
          onStep: (s, loss, lr) => {
            bar.update(s + 1, { loss });
            // Without the bar (stderr not a TTY), a line every 50 steps, like RL's every 10.
            if (!o.progress && (s + 1) % (5 * SFT_LOG_EVERY) === 0) log(`sft step ${s + 1}/${o.sftSteps} loss ${fmt(loss)}`);
            if ((s + 1) % SFT_LOG_EVERY === 0 || s + 1 === o.sftSteps)
              appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify({ sft_step: s + 1, sft_loss: loss, lr, time_s: (performance.now() - t0) / 1000 }) + "\n");
          },
        });
        bar.done();
        await saveCheckpoint(sftDir, model, { tokenizerDir: o.model, baseModel: o.model });
        log(`anvil: SFT warm start done (${o.sftSteps} steps) -> ${sftDir}`);
      }
      optimizer = makeOptimizer(model, o);
    }
    const tokenizerDir = o.model;
    if (o.beta > 0) {
      // Frozen reference. Full fine-tuning: the policy RL started from (SFT output or the given
      // model), a second copy. LoRA: the base without the adapter, the same weights.
      if (useLora) ref = { model, disableAdapter: true };
      else {
        refModel = (await loadCheckpoint(existsSync(join(sftDir, "config.json")) ? sftDir : o.model, backend)).model;
        ref = { model: refModel, disableAdapter: false };
      }
    }
    const policy = new Policy(model, tokenizer, optimizer, o.microBatch, o.generationBatch);
    if (o.rolloutServer) {
      // Rollouts from inference servers: check them, then put them on the learner's weights.
      const syncDir = resolve(o.syncDir || join(runDir, "published"));
      mkdirSync(syncDir, { recursive: true });
      fleet = new RolloutFleet(o.rolloutServer.split(",").map((u) => u.trim()).filter(Boolean), policy, { syncDir, tokenizerDir: o.model, baseModel: o.model, timeoutMs: o.rolloutTimeoutMs, log });
      await fleet.connect();
      await fleet.publish(model, String(startStep));
    }
    const initialEval = startStep === 0 ? (await evaluate(policy, evalSet, o.maxNewTokens)).result : null;
    if (initialEval) {
      hooks.onEval?.(0, initialEval);
      appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify({ step: 0, ...prefixed(initialEval) }) + "\n");
      log(`anvil: eval before RL: acc ${fmt(initialEval.acc)} (answerable ${fmt(initialEval.acc_answerable)}, unanswerable ${fmt(initialEval.acc_unanswerable)})`);
    }
    if (dp.worldSize > 1) {
      // The other ranks have waited (without a timeout) through the setup, SFT and first eval.
      await broadcastJson<RunSetup>(dp, { options: o, startStep, curriculum: trainerState?.curriculum ?? null, dataset, hasRef: !!refModel }, null);
      dp = await withDeviceCollective(dp, backend);
      await syncFromRankZero(dp, model, optimizer, refModel);
      log(`anvil: data parallel over ${dp.worldSize} ranks (${dp instanceof NcclCollective ? "NCCL" : "TCP all-reduce"}): ${o.promptsPerStep} groups per step split across them`);
    }
    const trainer = new Trainer(o, policy, scorer, promptSource(o, dataset), ref, dp, fleet ?? policy);
    if (trainerState?.curriculum) trainer.curriculum.state = trainerState.curriculum;
    trainer.on("samples", (step: number, rolls: { instance: Instance; text: string; score: { reward: number; correct: boolean } }[]) => {
      const lines = rolls.map((r) => JSON.stringify({ step, id: r.instance.id, answerable: r.instance.answerable, answer: r.instance.answer, completion: r.text, reward: r.score.reward, correct: r.score.correct }));
      if (lines.length) appendFileSync(join(runDir, "samples.jsonl"), lines.join("\n") + "\n");
    });
    let lastCheckpoint: string | null = ckpt?.dir ?? null;
    const bar = new Progress("train", o.steps, o.progress, startStep);
    const report = () => writeReport(runDir, `anvil ${o.algo} on ${o.dataset || o.task}`, o);
    for (let step = startStep; step < o.steps; step++) {
      let m: StepMetrics;
      try {
        m = await trainer.step(step);
      } catch (e) {
        if (e instanceof NonFiniteLossError) {
          report();
          throw new Error(`${e.message}. The last good checkpoint is ${lastCheckpoint ?? "(none yet)"}; resume with --resume ${o.out} after changing the options (e.g. a lower --lr).`);
        }
        throw e;
      }
      if (fleet) {
        Object.assign(m, fleet.endStep(step + 1));
        if ((step + 1) % o.syncEvery === 0 && step + 1 < o.steps) await fleet.publish(model, String(step + 1));
      }
      const record: Record<string, number> = { ...m };
      if (evalAfter(o, step)) {
        const ev = (await evaluate(policy, evalSet, o.maxNewTokens)).result;
        Object.assign(record, prefixed(ev));
        hooks.onEval?.(step + 1, ev);
        await dp.barrier(null);
      }
      appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify(record) + "\n");
      hooks.onStep?.(m);
      bar.update(step + 1, { reward: m.reward_mean, acc: m.acc, abst: m.abstain_rate, kl: m.kl, "tok/s": Math.round(m.tokens_per_s) });
      if (!o.progress && ((step + 1) % 10 === 0 || step === startStep)) log(`step ${step + 1}/${o.steps} reward ${fmt(m.reward_mean)} acc ${fmt(m.acc)} abstain ${fmt(m.abstain_rate)} len ${m.completion_len_mean.toFixed(1)} ${Math.round(m.tokens_per_s)} tok/s`);
      if ((step + 1) % o.checkpointEvery === 0 || step + 1 === o.steps) {
        const dir = join(runDir, "checkpoints", `step-${step + 1}`);
        await saveCheckpoint(dir, model, { tokenizerDir, baseModel: o.model, optimizer: await optimizer.exportState(), trainerState: { step: step + 1, curriculum: trainer.curriculum.state } });
        lastCheckpoint = dir;
      }
      if ((step + 1) % o.reportEvery === 0) report();
    }
    bar.done();
    const { result: finalEval, samples } = await evaluate(policy, evalSet, o.maxNewTokens);
    hooks.onEval?.(o.steps, finalEval);
    appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify({ step: o.steps, final: 1, ...prefixed(finalEval) }) + "\n");
    writeFileSync(join(runDir, "eval_samples.jsonl"), samples.map((s) => JSON.stringify(s)).join("\n") + "\n");
    report();
    log(`anvil: final eval: acc ${fmt(finalEval.acc)} (answerable ${fmt(finalEval.acc_answerable)}, unanswerable ${fmt(finalEval.acc_unanswerable)}, abstain ${fmt(finalEval.abstain_rate)}); report: ${join(runDir, "report.html")}`);
    return { runDir, steps: o.steps, initialEval, finalEval, lastCheckpoint };
  } finally {
    fleet?.close();
    await releaseRun({ scorer, optimizer, ref: refModel, model, backend });
    // A run that failed before it started (e.g. a dataset prompt too long for the default model
    // made in it) leaves no directory behind when it created one.
    if (started) claim?.release();
    else claim?.discard();
  }
}

/**
 * The learning rate to use: the option, or by model size when it is 0 (auto). LoRA adapters
 * take rates about 10x those of full fine-tuning (the update is low-rank and starts at zero).
 */
export function effectiveLr(o: Pick<TrainOptions, "lr">, numParams: number, lora = false): number {
  if (o.lr > 0) return o.lr;
  const full = numParams < 10e6 ? 3e-4 : numParams < 1e9 ? 1e-5 : 1e-6;
  return lora ? Math.min(1e-3, 10 * full) : full;
}

/** Frees what a run (or a data-parallel rank's part of one) holds, whatever was made. */
export async function releaseRun(r: { scorer: Scorer | null; optimizer: AdamW | null; ref: Model | null; model: Model | null; backend: Backend | null }): Promise<void> {
  await r.scorer?.close();
  r.optimizer?.dispose();
  r.ref?.dispose();
  r.model?.dispose();
  r.backend?.destroy();
}

export function makeScorer(o: TrainOptions, log: (l: string) => void): Promise<Scorer> {
  return createScorer(o.rewards, {
    timeoutMs: o.rewardTimeoutMs,
    heapMb: o.rewardHeapMb,
    onFailure: (f) => log(`anvil: reward ${f.reward} failed on sample ${f.index}: ${f.reason} (the sample scores 0 for it)`),
  });
}

/** The optimizer options a training command takes (train's, and dpo's by the same names). */
export type OptimizerOptions = Pick<TrainOptions, "lr" | "beta1" | "beta2" | "weightDecay" | "warmupSteps" | "steps" | "minLrRatio" | "maxGradNorm">;

export function makeOptimizer(model: Model, o: OptimizerOptions): AdamW {
  const lr = effectiveLr(o, model.numParameters, model.adapter !== null);
  return new AdamW(model.trainable, {
    lr,
    beta1: o.beta1,
    beta2: o.beta2,
    weightDecay: o.weightDecay,
    warmupSteps: Math.min(o.warmupSteps, Math.max(0, o.steps - 1)),
    schedule: "cosine",
    totalSteps: Math.max(1, o.steps),
    minLr: lr * o.minLrRatio,
    maxGradNorm: o.maxGradNorm,
  });
}

/** An eval result as metrics fields: eval_acc, eval_acc_answerable, ... */
export function prefixed(r: EvalResult): Record<string, number> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [`eval_${k}`, v]));
}

const fmt = (x: number) => x.toFixed(3);
