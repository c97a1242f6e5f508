// Loopback fleet: two `anvil serve` processes give the rollouts of a short `anvil train` run
// on the tiny model. Killing one mid-run loses nothing and counts nothing twice: the run
// finishes with the same rollouts (rewards, lengths) as the run where both stayed up, every
// step's rollouts come from the weights published after the step before, and the surviving
// server ends on the last published version. Under LoRA the learner publishes its adapter and
// the server (started with --adapter) swaps it in place and serves it under the learner's name.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../src/backend/cpu.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { initModel } from "../src/model/init.js";
import { LoraAdapter } from "../src/model/lora.js";
import { saveAdapter } from "../src/model/peft.js";
import { Policy } from "../src/rl/policy.js";
import { runTraining } from "../src/rl/run.js";
import { taskCorpus } from "../src/tasks/index.js";

const cli = join(resolve(__dirname, ".."), "dist", "src", "cli", "main.js");
let work: string;
let model: string;
const procs: ChildProcess[] = [];

/** Starts `anvil serve` on a free port; resolves with its URL once it listens. */
function serve(...extra: string[]): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [cli, "serve", "--model", model, "--port", "0", "--backend", "cpu", "--threads", "1", ...extra], { stdio: ["ignore", "ignore", "pipe"] });
  procs.push(proc);
  return new Promise((ok, fail) => {
    let err = "";
    proc.stderr!.on("data", (d) => {
      err += d;
      const m = /on (http:\/\/[\d.:]+)/.exec(err);
      if (m) ok({ url: m[1], proc });
    });
    proc.on("exit", (code) => fail(new Error(`anvil serve exited (${code}): ${err}`)));
  });
}

const RUN = { model, task: "graphli" as const, backend: "cpu" as const, threads: 1, steps: 4, promptsPerStep: 2, groupSize: 4, maxNewTokens: 24, evalN: 2, sftSteps: 0, progress: false, seed: 5, rolloutTimeoutMs: 20_000 };
const SAME = ["step", "reward_mean", "acc", "format_rate", "completion_len_mean", "completion_len_max", "weight_version"];

function steps(run: string): Record<string, number>[] {
  return readFileSync(join(run, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.step > 0 && !m.final);
}

beforeAll(async () => {
  expect(existsSync(cli), "run `npm run build:ts` first").toBe(true);
  work = mkdtempSync(join(tmpdir(), "anvil-fleet-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 200), out: model, seed: 1 });
});

afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
});

describe("anvil train --rollout-server with two anvil serve processes", () => {
  it("finishes with the same rollouts when one server is killed mid-run", async () => {
    const [a, b] = await Promise.all([serve(), serve()]);
    const full = join(work, "full");
    await runTraining({ ...RUN, model, out: full, rolloutServer: `${a.url},${b.url}` }, { log: () => {} });

    const [c, d] = await Promise.all([serve(), serve()]);
    const killed = join(work, "killed");
    const logs: string[] = [];
    await runTraining(
      { ...RUN, model, out: killed, rolloutServer: `${c.url},${d.url}` },
      {
        log: (l) => logs.push(l),
        onStep: (m) => {
          if (m.step === 2) c.proc.kill("SIGKILL");
        },
      },
    );
    const ref = steps(full);
    const got = steps(killed);
    expect(got.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    // Every step's rollouts came from one version: the weights published after the step before.
    expect(got.map((m) => m.weight_version)).toEqual([0, 1, 2, 3]);
    for (let i = 0; i < ref.length; i++) {
      for (const k of SAME) expect(got[i][k], `step ${i + 1} ${k}`).toBe(ref[i][k]);
      expect(got[i].loss).toBeCloseTo(ref[i].loss, 4);
    }
    expect(ref.every((m) => m.rollout_retries === 0)).toBe(true);
    expect(got[2].rollout_retries).toBeGreaterThan(0); // step 3 lost server c
    expect(logs.some((l) => l.includes(c.url) && /failed/.test(l))).toBe(true);
    const health = await (await fetch(`${d.url}/health`)).json();
    expect(health.weight_version).toBe("3");
  }, 120_000);

  it("under LoRA publishes the adapter and the server serves base + the learner's adapter", async () => {
    // The server starts with an adapter of its own (--adapter); the learner's replaces it.
    const be = new CpuBackend({ threads: 1 });
    const start = join(work, "start-adapter");
    mkdirSync(start);
    const base = (await loadCheckpoint(model, be)).model;
    const fresh = LoraAdapter.create(be, base.config, { r: 2, alpha: 4, targets: ["q"] }, 1);
    await saveAdapter(start, fresh);
    fresh.dispose();
    base.dispose();
    const s = await serve("--adapter", start, "--lora-name", "start");
    const ids = async () => ((await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string; root: string }[] }).data;
    expect((await ids()).map((m) => m.id)).toEqual(["model", "start"]);

    const run = join(work, "lora");
    // A short LoRA SFT warm start makes the adapter differ from the base before RL starts.
    await runTraining({ ...RUN, model, out: run, steps: 2, sftSteps: 3, sftLr: 0.05, loraR: 2, loraTargets: "q,v", rolloutServer: s.url }, { log: () => {} });
    expect(steps(run).map((m) => m.weight_version)).toEqual([0, 1]);
    const published = join(run, "published", "adapter-v1");
    expect((await ids()).map((m) => [m.id, m.root])).toEqual([["model", model], ["anvil-policy", published]]);
    expect(((await (await fetch(`${s.url}/health`)).json()) as { weight_version: string }).weight_version).toBe("1");

    // The served adapter is the published one: same tokens and log-probs as base + adapter here.
    const local = await Policy.load(model, be, { adapter: published });
    const PROMPT = "If rain then wind. rain is true. Is wind true or false?";
    const [want] = await local.generate([PROMPT], { maxNewTokens: 6, sampling: { temperature: 1, topK: 0, topP: 1, minP: 0 }, seed: 3 });
    const ask = async (name: string) =>
      ((await (await fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: name, prompt: local.encodePrompt(PROMPT), max_tokens: 6, seed: 3, logprobs: 0, return_token_ids: true }) })).json()) as { choices: { token_ids: number[]; logprobs: { token_logprobs: number[] } }[] }).choices[0];
    const served = await ask("anvil-policy");
    expect(served.token_ids).toEqual(want.tokens);
    expect(served.logprobs.token_logprobs).toEqual(want.logprobs.map(Math.fround));
    expect((await ask("model")).logprobs.token_logprobs).not.toEqual(served.logprobs.token_logprobs); // the base alone differs
    local.model.dispose();
    be.destroy();
  }, 120_000);
});
