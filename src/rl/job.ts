// Training as a background job for embedding applications: the run happens in a worker
// thread, so the host's event loop stays free (native ops are synchronous by design: a
// decode step makes hundreds of microsecond calls, too many to hop threads for each).
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { EvalResult } from "./eval.js";
import { DEFAULTS, type TrainOptions } from "./options.js";
import { releaseLockOf } from "./run-dir.js";
import type { RunResult } from "./run.js";
import type { StepMetrics } from "./trainer.js";

export type JobMessage =
  | { type: "log"; line: string }
  | { type: "step"; metrics: StepMetrics }
  | { type: "eval"; step: number; result: EvalResult }
  | { type: "done"; result: RunResult }
  | { type: "error"; message: string; stack?: string };

export interface TrainingJobEvents {
  log: [line: string];
  step: [metrics: StepMetrics];
  eval: [step: number, result: EvalResult];
}

/** A training run in a worker thread: events while it runs, `done` when it ends. */
export class TrainingJob extends EventEmitter<TrainingJobEvents> {
  readonly done: Promise<RunResult>;
  private readonly worker: Worker;
  private readonly runDir: string;

  constructor(options: Partial<TrainOptions> & { resume?: string }) {
    super();
    const script = fileURLToPath(new URL("./job-worker.js", import.meta.url));
    if (!existsSync(script)) throw new Error(`training worker not found at ${script}: run the compiled package (npm run build:ts)`);
    this.worker = new Worker(script, { workerData: { options } });
    this.runDir = resolve(options.resume ?? options.out ?? DEFAULTS.out);
    const threadId = this.worker.threadId;
    this.done = new Promise<RunResult>((resolve, reject) => {
      let settled = false;
      this.worker.on("message", (m: JobMessage) => {
        if (m.type === "log") this.emit("log", m.line);
        else if (m.type === "step") this.emit("step", m.metrics);
        else if (m.type === "eval") this.emit("eval", m.step, m.result);
        else if (m.type === "done") {
          settled = true;
          resolve(m.result);
        } else if (m.type === "error") {
          settled = true;
          const e = new Error(m.message);
          if (m.stack) e.stack = m.stack;
          reject(e);
        }
      });
      this.worker.on("error", (e) => {
        settled = true;
        reject(e);
      });
      this.worker.on("exit", (code) => {
        // A terminated worker cannot release its run directory's lock; its pid (ours) stays alive.
        releaseLockOf(this.runDir, process.pid, threadId);
        if (!settled) reject(new Error(`training worker exited with code ${code} before finishing`));
      });
    });
    // An unobserved failure must not crash the host with an unhandled rejection.
    this.done.catch(() => {});
  }

  /** Stops the run now; the last checkpoint stays valid and --resume continues from it. */
  async cancel(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Starts a training run in a worker thread (see TrainingJob). */
export function startTraining(options: Partial<TrainOptions> & { resume?: string }): TrainingJob {
  return new TrainingJob(options);
}
