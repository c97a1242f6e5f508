// `anvil dpo`: preference optimization (DPO, cDPO, IPO, SimPO, MaPPO) as a run on disk, with
// the run directory, checkpoints, logs and report machinery of `anvil train` (run.ts). Offline on
// a file of pairs (--dataset), or online (--online, dpo-online.ts): pairs sampled from the current
// policy on a task, round after round.
//
// Run directory
//   anvil-run.json, anvil.lock   marker and lock (run-dir.ts)
//   config.json                  resolved options (what --resume reads back)
//   pairs.jsonl                  the pairs, when they were given in memory (the library API)
//   ref_logps.json               reference log-probs per pair, computed once (preference-ref.ts)
//   rounds/round-R.jsonl         online: round R's pairs, with the verifier's scores
//   metrics.jsonl                one object per step: loss, rewards/*, logps/*, lr, grad_norm;
//                                with --task a step-0 row and a final row of held-out eval_*
//                                (online: the last step of each round also carries the round's
//                                pair statistics and eval_*)
//   checkpoints/step-N/          model (or LoRA adapter) + optimizer + {step}, atomically
//   report.html                  SVG curves
//
// Order: options, then preflight (pairs parsed, tokenized and checked against the model's
// context), then the directory is claimed, then compute: the reference log-probs (or the cached
// ones), then the steps. Resuming from step N reproduces the uninterrupted run: pair order is a
// function of (seed, step) and checkpoints restore parameters and optimizer moments exactly.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Backend } from "../backend/backend.js";
import { createBackend } from "../backend/index.js";
import { loadCheckpoint, loadOptimizerState, saveCheckpoint } from "../model/checkpoint.js";
import { loadConfig } from "../model/config.js";
import type { Model } from "../model/model.js";
import type { AdamW } from "../model/optim.js";
import { Tokenizer } from "../model/tokenizer.js";
import { writeReport } from "../report/report.js";
import { writeFileAtomicSync } from "../util/atomic.js";
import { readJsonFileSync } from "../util/json-file.js";
import { Progress } from "../util/progress.js";
import type { TaskName } from "../tasks/types.js";
import { appendMetrics, runOnlineRounds } from "./dpo-online.js";
import { evaluate, type EvalResult } from "./eval.js";
import { loraConfigOf, OptionsError } from "./options.js";
import { completionEndId, Policy } from "./policy.js";
import { checkPreferencePairs, encodePairs, hashPairs, readPreferencePairs, type PreferenceData, type PreferencePair } from "./preference-data.js";
import { usesReference } from "./preference-loss.js";
import { resolvePreferenceOptions, type PreferenceOptions } from "./preference-options.js";
import { computeReferenceLogps, readReferenceLogps, writeReferenceLogps, type ReferenceLogps } from "./preference-ref.js";
import { trainPreferences, type PreferenceStepMetrics } from "./preference-train.js";
import { requireRunDir, type RunDirClaim } from "./run-dir.js";
import { rewindLogs } from "./run-logs.js";
import { createScorer, type Scorer } from "./scoring.js";
import { heldOut, makeOptimizer, openRunDir, prefixed } from "./run.js";
import { NonFiniteLossError } from "./trainer.js";
import { prepareForTraining } from "./train-setup.js";

export const PAIRS_FILE = "pairs.jsonl";

export interface DpoHooks {
  /** A line of human-readable log (stderr in the CLI). */
  log?: (line: string) => void;
  onStep?: (m: PreferenceStepMetrics) => void;
}

export interface DpoResult {
  runDir: string;
  steps: number;
  /** The last step's metrics (null when no step ran in this call). */
  last: PreferenceStepMetrics | null;
  lastCheckpoint: string | null;
  /** Held-out eval on --task before the first step (a fresh run only) and after the last. */
  initialEval: EvalResult | null;
  finalEval: EvalResult | null;
}

/** Options of runDpo: the table's, plus --resume, plus pairs given in memory instead of --dataset. */
export type DpoRunOptions = Partial<PreferenceOptions> & { resume?: string; pairs?: readonly PreferencePair[] };

/** Steps between progress log lines when there is no progress bar. */
const LOG_EVERY = 10;

export async function runDpo(user: DpoRunOptions, hooks: DpoHooks = {}): Promise<DpoResult> {
  const log = hooks.log ?? ((l: string) => process.stderr.write(l + "\n"));
  // ---- options (resume reads the run's own config back; explicit options override it)
  const { resume, pairs: givenPairs, ...userOpts } = user;
  let o: PreferenceOptions;
  if (resume) {
    requireRunDir(resume);
    const cfgPath = join(resume, "config.json");
    if (!existsSync(cfgPath)) throw new OptionsError(`--resume ${resume}: the run has no config.json (it was stopped before it started); start it again with --out ${resume}`);
    o = resolvePreferenceOptions({ ...readJsonFileSync<PreferenceOptions>(cfgPath), ...userOpts, out: resume });
  } else o = resolvePreferenceOptions(userOpts);
  if (!o.model) throw new OptionsError("--model is required: the model directory to start from");
  if (o.online && givenPairs) throw new OptionsError("an online run makes its own pairs each round: give no pairs (or drop online)");
  if (!o.online && !givenPairs && !o.dataset) throw new OptionsError("--dataset is required: a JSONL file of {prompt, chosen, rejected} pairs (or --online --task T to sample pairs from the policy)");
  const runDir = resolve(o.out);

  // ---- preflight: the pairs, in tokens, against the model's context; the held-out items
  const data: PreferenceData | null = o.online ? null : givenPairs ? checkPreferencePairs(givenPairs) : await readPreferencePairs(o.dataset);
  const tokenizer = await Tokenizer.load(o.model);
  const config = await loadConfig(o.model);
  const pairs = data ? encodePairs(tokenizer, config.maxPositionEmbeddings, data) : [];
  const padId = tokenizer.padTokenId ?? completionEndId(tokenizer);
  const refKey = { pairs: data ? hashPairs(data.pairs) : "", model: resolve(o.model) };
  const evalSet = o.task ? heldOut(o.task as TaskName, o.evalN, o.evalDepth || o.minDepth, o.evalDepth || o.maxDepth, o.seed) : null;

  let backend: Backend | null = null;
  let claim: RunDirClaim | null = null;
  let model: Model | null = null;
  let optimizer: AdamW | null = null;
  let scorer: Scorer | null = null;
  let started = false;
  try {
    backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    if (o.online) scorer = await createScorer(o.rewards, { timeoutMs: o.rewardTimeoutMs, heapMb: o.rewardHeapMb, onFailure: (f) => log(`anvil: reward ${f.reward} failed on sample ${f.index}: ${f.reason} (the sample scores 0 for it)`) });
    let ckpt: { dir: string; step: number } | null;
    ({ claim, ckpt } = await openRunDir(runDir, o.out, !!resume, log));
    if (givenPairs && data) {
      writeFileAtomicSync(join(runDir, PAIRS_FILE), data.pairs.map((p) => JSON.stringify(p)).join("\n") + "\n");
      o.dataset = join(runDir, PAIRS_FILE);
    }
    writeFileAtomicSync(join(runDir, "config.json"), JSON.stringify(o, null, 2) + "\n");
    started = true;

    // ---- model: the checkpoint (resume) or the given model; under LoRA the base is always the
    // given model and checkpoints hold adapters.
    const lora = loraConfigOf(o);
    const useLora = lora !== null || o.adapter !== "";
    const startStep = ckpt?.step ?? 0;
    model = (await loadCheckpoint(ckpt && !useLora ? ckpt.dir : o.model, backend)).model;
    await prepareForTraining(model, { adapter: ckpt && useLora ? ckpt.dir : o.adapter, lora, seed: o.seed, gradientCheckpointing: o.gradientCheckpointing, frozenDtype: o.frozenDtype }, log);
    rewindLogs(runDir, startStep, true, log);
    optimizer = makeOptimizer(model, o);
    if (ckpt) {
      const state = await loadOptimizerState(ckpt.dir);
      if (state) optimizer.loadState(state);
      log(`anvil: resuming ${runDir} from step ${startStep}`);
    }

    // ---- held-out eval before the first step (with --task)
    const policy = new Policy(model, tokenizer, optimizer, o.microBatch, o.generationBatch);
    const evalNow = async (): Promise<EvalResult | null> => (evalSet ? (await evaluate(policy, evalSet, o.maxNewTokens)).result : null);
    const initialEval = startStep === 0 ? await evalNow() : null;
    if (initialEval) {
      appendMetrics(runDir, { step: 0, ...prefixed(initialEval) });
      log(`anvil: eval before training on ${o.task}: ${describeEval(initialEval)}`);
    }
    const bar = new Progress("dpo  ", o.steps, o.progress, startStep);
    const report = () => writeReport(runDir, `anvil dpo (${o.loss}${o.online ? ", online" : ""}) on ${o.online ? o.task : o.dataset}`, o);
    const saveAt = async (step: number, round?: number) => {
      const dir = join(runDir, "checkpoints", `step-${step}`);
      await saveCheckpoint(dir, model!, { tokenizerDir: o.model, baseModel: o.model, optimizer: await optimizer!.exportState(), trainerState: round === undefined ? { step } : { step, round } });
      return dir;
    };
    const logStep = (m: PreferenceStepMetrics) => {
      hooks.onStep?.(m);
      bar.update(m.step, { loss: m.loss, acc: m["rewards/accuracies"], margin: m["rewards/margins"] });
      if (!o.progress && (m.step % LOG_EVERY === 0 || m.step === startStep + 1 || m.step === o.steps))
        log(`step ${m.step}/${o.steps} loss ${fmt(m.loss)} acc ${fmt(m["rewards/accuracies"])} margin ${fmt(m["rewards/margins"])} chosen ${fmt(m["rewards/chosen"])} rejected ${fmt(m["rewards/rejected"])} grad ${fmt(m.grad_norm)}`);
    };

    if (o.online) {
      log(`anvil: online ${o.loss} on ${o.task}: ${o.rounds} rounds of ${o.promptsPerRound} prompts x ${o.samples} samples, then ${o.stepsPerRound} steps of ${o.batch} pairs; beta ${o.beta}; reference: ${o.refreshReference ? "the policy at the start of each round" : useLora ? "the base model (adapter disabled)" : "the starting model"}`);
      let lastCheckpoint: string | null = ckpt?.dir ?? null;
      let finalEval: EvalResult | null = null;
      const last = await runOnlineRounds({
        o,
        runDir,
        backend,
        model,
        optimizer,
        policy,
        scorer: scorer!,
        padId,
        useLora,
        startStep,
        log,
        evalRow: async () => {
          const ev = await evalNow();
          if (!ev) return {};
          finalEval = ev;
          log(`   eval: ${describeEval(ev)}`);
          return prefixed(ev);
        },
        record: (row, m) => {
          appendMetrics(runDir, row);
          if (m) logStep(m);
        },
        checkpoint: async (step, round) => (lastCheckpoint = await saveAt(step, round)),
        report,
      }).catch((e: unknown) => {
        if (e instanceof NonFiniteLossError) {
          report();
          throw new Error(`${e.message}. The last good checkpoint is ${lastCheckpoint ?? "(none yet)"}; resume with --resume ${o.out} after changing the options (e.g. a lower --lr).`);
        }
        throw e;
      });
      bar.done();
      log(`anvil: online dpo done (${o.rounds} rounds, ${o.steps} steps); report: ${join(runDir, "report.html")}`);
      return { runDir, steps: o.steps, last, lastCheckpoint, initialEval, finalEval };
    }

    // ---- reference log-probs: once per pair, before any update, then cached
    let ref: ReferenceLogps | null = null;
    if (usesReference(o.loss)) {
      ref = readReferenceLogps(runDir, refKey, pairs.length);
      if (ref) log(`anvil: reference log-probs of ${pairs.length} pairs from ${join(runDir, "ref_logps.json")}`);
      else {
        const t0 = performance.now();
        if (ckpt && !useLora) {
          // A full fine-tuning run resumed without its cache: the reference is the starting model.
          const start = (await loadCheckpoint(o.model, backend)).model;
          try {
            ref = await computeReferenceLogps(start, pairs, padId, o.microBatch, false);
          } finally {
            start.dispose();
          }
        } else ref = await computeReferenceLogps(model, pairs, padId, o.microBatch, useLora);
        writeReferenceLogps(runDir, refKey, ref);
        log(`anvil: reference log-probs of ${pairs.length} pairs (${useLora ? "base model, adapter disabled" : "starting weights"}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
      }
    }

    // ---- steps
    log(`anvil: ${o.loss} on ${pairs.length} pairs from ${o.dataset}: beta ${o.beta}, ${o.batch} pairs per step, ${o.steps} steps`);
    let lastCheckpoint: string | null = ckpt?.dir ?? null;
    let last: PreferenceStepMetrics | null = null;
    try {
      await trainPreferences(model, optimizer, pairs, ref, {
        ...o,
        startStep,
        padId,
        onStep: async (m) => {
          last = m;
          appendMetrics(runDir, m);
          logStep(m);
          if (m.step % o.checkpointEvery === 0 || m.step === o.steps) lastCheckpoint = await saveAt(m.step);
          if (m.step % o.reportEvery === 0) report();
        },
      });
    } catch (e) {
      if (e instanceof NonFiniteLossError) {
        report();
        throw new Error(`${e.message}. The last good checkpoint is ${lastCheckpoint ?? "(none yet)"}; resume with --resume ${o.out} after changing the options (e.g. a lower --lr).`);
      }
      throw e;
    }
    bar.done();
    const finalEval = await evalNow();
    if (finalEval) {
      appendMetrics(runDir, { step: o.steps, final: 1, ...prefixed(finalEval) });
      log(`anvil: eval after training on ${o.task}: ${describeEval(finalEval)}`);
    }
    report();
    log(`anvil: dpo done (${o.steps} steps); report: ${join(runDir, "report.html")}`);
    return { runDir, steps: o.steps, last, lastCheckpoint, initialEval, finalEval };
  } finally {
    await scorer?.close();
    optimizer?.dispose();
    model?.dispose();
    backend?.destroy();
    if (started) claim?.release();
    else claim?.discard();
  }
}

const fmt = (x: number) => x.toFixed(3);
const describeEval = (e: EvalResult) => `acc ${fmt(e.acc)} (answerable ${fmt(e.acc_answerable)}, unanswerable ${fmt(e.acc_unanswerable)}, abstain ${fmt(e.abstain_rate)})`;
