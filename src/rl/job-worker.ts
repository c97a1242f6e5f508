// Worker-thread entry of TrainingJob: runs one training run and reports over the port.
import { parentPort, workerData } from "node:worker_threads";
import type { JobMessage } from "./job.js";
import { runTraining } from "./run.js";

const post = (m: JobMessage) => parentPort!.postMessage(m);
try {
  const result = await runTraining(workerData.options, {
    log: (line) => post({ type: "log", line }),
    onStep: (metrics) => post({ type: "step", metrics }),
    onEval: (step, result) => post({ type: "eval", step, result }),
  });
  post({ type: "done", result });
} catch (e) {
  post({ type: "error", message: (e as Error).message, stack: (e as Error).stack });
}
