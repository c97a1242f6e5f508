// End-to-end training runs on the tiny model: run directory contents, learning a reachable
// reward, resume after kill -9 (identical metrics), NaN handling, the worker-thread job API and
// its event-loop lag.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { initModel } from "../src/model/init.js";
import { Tokenizer } from "../src/model/tokenizer.js";
import { runTraining, traceBudget } from "../src/rl/run.js";
import { taskCorpus } from "../src/tasks/index.js";

const root = resolve(__dirname, "..");
const cli = join(root, "dist", "src", "cli", "main.js");
let work: string;
let model: string;

/** A small, fast configuration: a few rollouts of short completions per step. */
const SMALL = {
  task: "graphla" as const,
  backend: "cpu" as const,
  promptsPerStep: 2,
  groupSize: 4,
  maxNewTokens: 16,
  evalN: 4,
  sftSteps: 0,
  progress: false,
  seed: 3,
};

const TIMING = /^(tokens_per_s|time_.*)$/;
function metrics(run: string): Record<string, number>[] {
  return readFileSync(join(run, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.step !== undefined)
    .map((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !TIMING.test(k))) as Record<string, number>);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-train-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: model, seed: 1 });
});

describe("training run", () => {
  it("writes metrics, samples, atomic checkpoints and a report", async () => {
    const out = join(work, "run-a");
    // maxNewTokens covers the ground-truth trajectories (depth 1 keeps them short), so Anchor
    // injects one per group.
    const maxNewTokens = traceBudget(await Tokenizer.load(model), "graphla", 1);
    const r = await runTraining({ ...SMALL, minDepth: 1, maxDepth: 1, maxNewTokens, model, out, steps: 3, checkpointEvery: 2, algo: "anchor" }, { log: () => {} });
    expect(r.steps).toBe(3);
    const ms = metrics(out).filter((m) => !m.final && m.step > 0);
    expect(ms.map((m) => m.step)).toEqual([1, 2, 3]);
    for (const m of ms) {
      for (const k of ["reward_mean", "acc_answerable", "acc_unanswerable", "abstain_rate", "frac_reward_zero_std", "kl", "entropy", "clip_low", "clip_high", "completion_len_mean", "grad_norm"]) expect(Number.isFinite(m[k]), k).toBe(true);
      expect(m.anchor_frac).toBeCloseTo(1 / 4); // one ground-truth trajectory per group of 4 (the default: always)
      expect(m.anchor_too_long).toBe(0);
    }
    expect(existsSync(join(out, "checkpoints", "step-2", "model.safetensors"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-3", "optimizer.safetensors"))).toBe(true);
    expect(readFileSync(join(out, "report.html"), "utf8")).toContain("<svg");
    expect(readFileSync(join(out, "samples.jsonl"), "utf8").split("\n").filter(Boolean).length).toBeGreaterThan(0);
    // refuses to overwrite a run by accident
    await expect(runTraining({ ...SMALL, model, out, steps: 3 }, { log: () => {} })).rejects.toThrow(/--resume/);
  });

  it("resumes after kill -9 with the same metrics as an uninterrupted run", async () => {
    expect(existsSync(cli), "run `npm run build:ts` first").toBe(true);
    const args = (out: string) => ["train", "--model", model, "--out", out, "--steps", "10", "--checkpoint-every", "2", "--task", "graphla", "--backend", "cpu", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "16", "--eval-n", "4", "--seed", "3", "--no-progress"];
    const full = join(work, "full");
    const done = spawnSync(process.execPath, [cli, ...args(full)], { encoding: "utf8" });
    expect(done.status, done.stderr).toBe(0);

    const killed = join(work, "killed");
    const child = spawn(process.execPath, [cli, ...args(killed)], { stdio: "ignore" });
    const marker = join(killed, "checkpoints", "step-2", "trainer_state.json");
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        if (existsSync(marker)) {
          clearInterval(t);
          child.kill("SIGKILL");
          res();
        }
      }, 20);
      child.on("exit", () => {
        clearInterval(t);
        existsSync(marker) ? res() : rej(new Error("the run ended before its step-2 checkpoint"));
      });
    });
    await new Promise((r) => setTimeout(r, 100));
    const resumed = spawnSync(process.execPath, [cli, "train", "--resume", killed, "--no-progress"], { encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming .* from step [2-8]\b/);
    expect(metrics(killed)).toEqual(metrics(full));
    // 16 new tokens cannot hold a ground-truth trajectory: Anchor skips every group and says so.
    for (const m of metrics(full).filter((m) => m.step > 0 && !m.final)) {
      expect(m.anchor_frac).toBe(0);
      expect(m.anchor_too_long).toBe(2);
    }
  });

  it("learns a reward it can reach: rollouts, advantages, loss and update wired the right way round", async () => {
    // The share of digit characters in a completion: under 1% for the untrained policy, and
    // raised by moving a few output logits. A sign error or rewards paired with the wrong rows
    // leaves it flat or lowers it.
    const reward = join(work, "digits.mjs");
    writeFileSync(reward, 'export default (c) => (c.length ? [...c].filter((x) => x >= "0" && x <= "9").length / c.length : 0);\n');
    const out = join(work, "digits");
    await runTraining({ ...SMALL, promptsPerStep: 4, groupSize: 8, evalN: 0, model, out, steps: 15, algo: "grpo", lr: 1e-3, rewards: reward }, { log: () => {} });
    const r = metrics(out).filter((m) => !m.final && m.step > 0).map((m) => m.reward_mean);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`digit share by step: ${r.map((x) => x.toFixed(3)).join(" ")}`);
    expect(mean(r.slice(-3))).toBeGreaterThan(0.1);
    expect(mean(r.slice(-3))).toBeGreaterThan(10 * mean(r.slice(0, 3)));
  });

  it("stops on a non-finite loss, naming the step and keeping the last good checkpoint", async () => {
    const out = join(work, "nan");
    // Room for the ground-truth trajectories: Anchor gives every group reward variance, so the
    // update is never zero (an untrained policy alone scores 0 everywhere under `correct`).
    await runTraining({ ...SMALL, maxNewTokens: 160, model, out, steps: 1, checkpointEvery: 1 }, { log: () => {} });
    // Resume with a learning rate that blows the parameters up at step 2.
    const err = await runTraining({ resume: out, steps: 4, lr: 1e30, warmupSteps: 0, maxGradNorm: 0 }, { log: () => {} }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/not finite at step 2/);
    expect(msg).toMatch(/last good checkpoint is \S*step-1;/);
    expect(existsSync(join(out, "checkpoints", "step-1", "model.safetensors"))).toBe(true);
    expect(existsSync(join(out, "checkpoints", "step-2"))).toBe(false);
  });

  it("runs as a worker-thread job without blocking the event loop", async () => {
    const dist = join(root, "dist", "src", "index.js");
    expect(existsSync(dist), "run `npm run build:ts` first").toBe(true);
    const { startTraining } = (await import(dist)) as typeof import("../src/index.js");
    const job = startTraining({ ...SMALL, model, out: join(work, "job"), steps: 2 });
    const steps: number[] = [];
    job.on("step", (m) => steps.push(m.step));
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    const result = await job.done;
    clearInterval(timer);
    console.log(`event-loop max gap while training in a worker: ${maxGap.toFixed(1)} ms`);
    expect(steps).toEqual([1, 2]);
    expect(result.finalEval.n).toBe(4);
    expect(maxGap).toBeLessThan(250);
  });

  it("rejects bad flags and config files with a clear message", () => {
    const bad = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
    let r = bad(["train", "--algo", "ppo"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Allowed choices are grpo, dr-grpo, anchor/);
    r = bad(["train", "--group-size", "1", "--out", join(work, "x")]);
    expect(r.stderr).toMatch(/groupSize: must be >= 2/);
    const cfg = join(work, "bad.yaml");
    writeFileSync(cfg, "stepz: 3\n");
    r = bad(["train", "--config", cfg, "--out", join(work, "y")]);
    expect(r.stderr).toMatch(/unknown option "stepz" \(did you mean "steps"\?\)/);
  });
});
