// The part of a data-parallel run on ranks other than 0: the same training steps on its share
// of each step's groups, nothing written. Rank 0 (runTraining) owns the run directory: it sets
// the run up (options, SFT, resume), then sends the options and its parameters and optimizer
// state, so every rank starts from the same state whatever its disk holds.
import type { Backend } from "../backend/backend.js";
import { createBackend } from "../backend/index.js";
import { broadcastJson, type Collective } from "../distributed/collective.js";
import { withDeviceCollective } from "../distributed/nccl.js";
import { syncFromRankZero } from "../distributed/sync.js";
import { loadCheckpoint } from "../model/checkpoint.js";
import type { Model } from "../model/model.js";
import type { AdamW } from "../model/optim.js";
import { Tokenizer } from "../model/tokenizer.js";
import { Policy } from "./policy.js";
import { evalAfter, makeOptimizer, makeScorer, promptSource, releaseRun, type RunHooks, type RunSetup } from "./run.js";
import type { Scorer } from "./scoring.js";
import { Trainer } from "./trainer.js";

/** Runs rank `dp.rank` (> 0) of a data-parallel run until its last step. */
export async function followTraining(world: Collective, hooks: RunHooks = {}): Promise<void> {
  let dp = world;
  if (dp.rank === 0) throw new Error("followTraining runs on ranks > 0; rank 0 runs runTraining");
  const log = hooks.log ?? ((l: string) => process.stderr.write(l + "\n"));
  // No timeout: rank 0 may spend long on setup (SFT warm start, first eval); its death ends the wait.
  const setup = await broadcastJson<RunSetup>(dp, undefined, null);
  const o = setup.options;
  let backend: Backend | null = null;
  let scorer: Scorer | null = null;
  let model: Model | null = null;
  let refModel: Model | null = null;
  let optimizer: AdamW | null = null;
  try {
    backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    scorer = await makeScorer(o, log);
    const tokenizer = await Tokenizer.load(o.model);
    // The model directory gives the shapes; the values come from rank 0.
    model = (await loadCheckpoint(o.model, backend)).model;
    optimizer = makeOptimizer(model, o);
    if (setup.hasRef) refModel = (await loadCheckpoint(o.model, backend)).model;
    dp = await withDeviceCollective(dp, backend);
    await syncFromRankZero(dp, model, optimizer, refModel);
    const trainer = new Trainer(o, new Policy(model, tokenizer, optimizer, o.microBatch, o.generationBatch), scorer, promptSource(o, setup.dataset), refModel && { model: refModel, disableAdapter: false }, dp);
    if (setup.curriculum) trainer.curriculum.state = setup.curriculum;
    for (let step = setup.startStep; step < o.steps; step++) {
      const m = await trainer.step(step);
      hooks.onStep?.(m);
      if (evalAfter(o, step)) await dp.barrier(null);
    }
  } finally {
    await releaseRun({ scorer, optimizer, ref: refModel, model, backend });
  }
}
