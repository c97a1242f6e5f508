// Scoring a batch: verifier + built-in rewards in-process, user reward modules in a piscina pool.
//
// Every user-module call has its own timeout, measured from the moment a worker starts it (the
// worker posts "start" on a per-call MessagePort), so queueing behind other calls or waiting
// for a replacement worker never counts against it. A call that hangs is aborted, which makes
// piscina terminate that worker and spawn a replacement; a call that throws or returns a
// non-finite number is caught. Either way only that sample's component is lost: it scores 0,
// the sample is marked `failed` and listed in `failures` with the reason, and the batch goes on.
//
// Workers run under a heap limit (heapMb, V8's old generation): a module that allocates without
// bound kills only its worker (ERR_WORKER_OUT_OF_MEMORY), which piscina replaces, instead of
// aborting the whole process. A worker that exits (process.exit in a module) is handled alike.
//
// The worker is plain JS (worker.cjs) so it runs both under vitest (next to pool.ts in src/) and
// from dist/ — tsc does not copy .cjs files, so the build must copy it next to dist/.../pool.js.
// Built-in rewards never need the worker file.

import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { MessageChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import type { Instance } from "../tasks/types.js";
import { type Judgement, judge } from "../tasks/verify.js";
import {
  BUILTIN_REWARDS,
  DEFAULT_REWARDS,
  type RewardSpec,
  checkRewardSpecs,
  isBuiltinReward,
  moduleUrl,
  weightedSum,
} from "./rewards.js";

export interface RewardPoolOptions {
  /** Terms of the total reward (default: correct with weight 1). */
  rewards?: readonly RewardSpec[];
  /** Per-call limit for a user reward, in ms, from the moment the call starts (default 2000). */
  timeoutMs?: number;
  /** Worker threads for user rewards (default min(2, cores)). Unused with built-ins only. */
  threads?: number;
  /** Heap limit of each worker in MB (default 256): exhausting it costs the sample, not the process. */
  heapMb?: number;
  /** How long a call may wait for a free worker before it is failed (default: no limit; big batches queue). */
  queueTimeoutMs?: number;
  /** Called once per failure (e.g. to log it); the failure is also in the batch result. */
  onFailure?: (f: RewardFailure) => void;
}

export interface SampleDetail {
  judgement: Judgement;
  /** Unweighted value of each reward term, by name. */
  components: Record<string, number>;
  /** Weighted sum of the components. */
  reward: number;
  /** A user reward failed on this sample (its component counts as 0). */
  failed: boolean;
}

export interface RewardFailure {
  /** Index of the sample in the batch. */
  index: number;
  /** The reward term that failed. */
  reward: string;
  reason: string;
}

export interface ScoreResult {
  rewards: number[];
  details: SampleDetail[];
  failures: RewardFailure[];
}

/** Where the worker lives: next to this file, whether that is src/rewards or dist/src/rewards. */
export const WORKER_URL = new URL("./worker.cjs", import.meta.url);

export class RewardPool {
  private readonly specs: readonly RewardSpec[];
  private readonly modules: { name: string; url: string }[];
  private readonly timeoutMs: number;
  private readonly queueTimeoutMs: number;
  private readonly onFailure?: (f: RewardFailure) => void;
  private readonly heapMb: number;
  private pool: Piscina | null = null;

  private constructor(opts: RewardPoolOptions) {
    this.specs = opts.rewards ?? DEFAULT_REWARDS;
    checkRewardSpecs(this.specs);
    this.timeoutMs = opts.timeoutMs ?? 2000;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${this.timeoutMs}`);
    this.queueTimeoutMs = opts.queueTimeoutMs ?? Infinity;
    this.onFailure = opts.onFailure;
    this.heapMb = opts.heapMb ?? 256;
    if (!Number.isInteger(this.heapMb) || this.heapMb < 16) throw new RangeError(`heapMb must be an integer >= 16, got ${this.heapMb}`);
    this.modules = this.specs.filter((s) => !isBuiltinReward(s.name)).map((s) => ({ name: s.name, url: moduleUrl(s.name) }));
    if (this.modules.length === 0) return;
    for (const m of this.modules)
      if (!existsSync(fileURLToPath(m.url))) throw new Error(`reward module ${JSON.stringify(m.name)} not found (${fileURLToPath(m.url)})`);
    if (!existsSync(fileURLToPath(WORKER_URL)))
      throw new Error(`reward worker missing at ${fileURLToPath(WORKER_URL)}: the build must copy src/rewards/worker.cjs next to pool.js`);
    const threads = opts.threads ?? Math.min(2, availableParallelism());
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
    this.pool = new Piscina({
      filename: WORKER_URL.href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb },
    });
  }

  /** Builds the pool and checks that each user module loads and exports a reward function. */
  static async create(opts: RewardPoolOptions = {}): Promise<RewardPool> {
    const rp = new RewardPool(opts);
    for (const m of rp.modules) {
      const r = await rp.call({ module: m.url, check: true });
      if ("error" in r) {
        await rp.close();
        throw new Error(`reward module ${JSON.stringify(m.name)} cannot be used: ${r.error}`);
      }
    }
    return rp;
  }

  /** Scores completions[i] against instances[i]; never rejects because of a reward function. */
  async scoreBatch(instances: readonly Instance[], completions: readonly string[]): Promise<ScoreResult> {
    if (instances.length !== completions.length)
      throw new RangeError(`scoreBatch: ${instances.length} instances but ${completions.length} completions`);
    const failures: RewardFailure[] = [];
    const details = await Promise.all(
      instances.map(async (inst, index): Promise<SampleDetail> => {
        const completion = completions[index]!;
        const judgement = judge(inst, completion);
        const components: Record<string, number> = {};
        for (const s of this.specs) if (isBuiltinReward(s.name)) components[s.name] = BUILTIN_REWARDS[s.name](judgement, inst);
        let failed = false;
        await Promise.all(
          this.modules.map(async (m) => {
            const r = await this.call({ module: m.url, completion, instance: inst });
            if ("value" in r) components[m.name] = r.value;
            else {
              components[m.name] = 0;
              failed = true;
              const f = { index, reward: m.name, reason: r.error };
              failures.push(f);
              this.onFailure?.(f);
            }
          }),
        );
        return { judgement, components, reward: weightedSum(this.specs, components), failed };
      }),
    );
    failures.sort((a, b) => a.index - b.index || a.reward.localeCompare(b.reward));
    return { rewards: details.map((d) => d.reward), details, failures };
  }

  /** One worker call with its own timeout; resolves to a finite value or the failure reason. */
  private async call(task: { module: string; check?: boolean; completion?: string; instance?: Instance }): Promise<{ value: number } | { error: string }> {
    const pool = this.pool!;
    const { port1, port2 } = new MessageChannel();
    const abort = new AbortController();
    let why = "";
    const stop = (reason: string): void => {
      why = reason;
      abort.abort(new Error(reason));
    };
    let finished = false;
    let runTimer: NodeJS.Timeout | undefined;
    const queueTimer = Number.isFinite(this.queueTimeoutMs)
      ? setTimeout(() => stop(`no worker became free within ${this.queueTimeoutMs} ms`), this.queueTimeoutMs)
      : undefined;
    port1.once("message", () => {
      clearTimeout(queueTimer);
      if (!finished) runTimer = setTimeout(() => stop(`timed out after ${this.timeoutMs} ms`), this.timeoutMs);
    });
    try {
      const out = (await pool.run({ ...task, port: port2 }, { signal: abort.signal, transferList: [port2] as never })) as
        | { value: number }
        | { invalid: string };
      if ("invalid" in out) return { error: `returned ${out.invalid}, expected a finite number` };
      if (!Number.isFinite(out.value)) return { error: `returned ${out.value}, expected a finite number` };
      return { value: out.value };
    } catch (e) {
      if (why) return { error: why };
      const err = e as NodeJS.ErrnoException;
      if (err.code === "ERR_WORKER_OUT_OF_MEMORY") return { error: `ran out of memory (the worker heap limit is ${this.heapMb} MB; raise --reward-heap-mb if the module needs more); its worker was replaced` };
      if (/worker exited/i.test(err.message ?? "")) return { error: `${err.message} (the module ended its worker thread); its worker was replaced` };
      return { error: `threw: ${e instanceof Error ? e.message : String(e)}` };
    } finally {
      finished = true;
      clearTimeout(queueTimer);
      clearTimeout(runTimer);
      port1.close();
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    if (pool) await pool.destroy();
  }
}

/** One-shot convenience: create a pool, score one batch, close it. */
export async function scoreBatch(
  instances: readonly Instance[],
  completions: readonly string[],
  opts: RewardPoolOptions = {},
): Promise<ScoreResult> {
  const pool = await RewardPool.create(opts);
  try {
    return await pool.scoreBatch(instances, completions);
  } finally {
    await pool.close();
  }
}
