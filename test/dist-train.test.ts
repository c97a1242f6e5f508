// Data-parallel training equals single-process training:
//  - gradients: two ranks' shares of a batch, normalised by the whole batch and summed by the
//    TCP all-reduce, equal the one-process gradient for every loss aggregation (and a naive
//    per-rank normalisation does not, when ranks hold different token counts);
//  - `anvil train --nproc 2` makes the same step as one process (same gradient norm, loss and
//    metrics, parameters to float tolerance), and after a rank is killed mid-run the others
//    stop with an error naming it, and --resume (launched per rank, as on several nodes) finishes
//    with the uninterrupted run's parameters.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { LossAggregation } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { freePort } from "../src/distributed/launch.js";
import { TcpCollective } from "../src/distributed/tcp.js";
import { initModel } from "../src/model/init.js";
import { readSafetensors } from "../src/model/safetensors.js";
import { packBatch, type Sequence } from "../src/rl/batch.js";
import { Policy } from "../src/rl/policy.js";
import { policyGradient } from "../src/rl/step.js";
import { generate, taskCorpus } from "../src/tasks/index.js";

const root = resolve(__dirname, "..");
const cli = join(root, "dist", "src", "cli", "main.js");
let work: string;
let model: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-dp-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: model, seed: 1 });
});

describe("data-parallel gradient", () => {
  it("two ranks' shares all-reduced equal the whole batch's gradient, for every aggregation", async () => {
    const be = new CpuBackend({ threads: 1 });
    const p = await Policy.load(model, be);
    // Completions of very different lengths: token-mean weights ranks by their token counts.
    const seqs: Sequence[] = Array.from({ length: 6 }, (_, i) => {
      const inst = generate("graphla", { depth: 1, seed: 40 + i });
      const text = `<think>${inst.trace}</think><answer>${inst.answer}</answer>`.slice(0, i < 3 ? 12 : 60 + 10 * i);
      const completionIds = p.encodeCompletion(text);
      // Old log-probs away from the current ones, so ratios and clipping take part.
      return { promptIds: p.encodePrompt(inst.prompt), completionIds, rolloutLogprobs: completionIds.map((_, j) => -3 - 0.05 * ((i + j) % 5)) };
    });
    const adv = Float32Array.from([1, -1, 0.5, -0.5, 2, -2]);
    const names = [...p.model.params.keys()].sort();
    const grads = async () => {
      const out: Float32Array[] = [];
      for (const n of names) out.push((await be.read(p.model.grad(n))) as Float32Array);
      const flat = new Float32Array(out.reduce((a, g) => a + g.length, 0));
      out.reduce((off, g) => (flat.set(g, off), off + g.length), 0);
      return flat;
    };
    const port = await freePort();
    const [c0, c1] = await Promise.all([0, 1].map((rank) => TcpCollective.connect({ rank, worldSize: 2, host: "127.0.0.1", port, timeoutMs: 10_000 })));
    try {
      for (const aggregation of ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"] as LossAggregation[]) {
        const loss = { epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0, kl: "k3" as const, entropyCoef: 0.01, tisCap: 0, aggregation, maxCompletionLength: 64 };
        const run = async (part: Sequence[], a: Float32Array, wholeBatch?: { sequences: number; tokens: number }) => {
          const batch = packBatch(part, p.padId);
          p.model.zeroGrads();
          const st = await policyGradient(p.model, { batch, oldLogprob: batch.rolloutLogprobs, refLogprob: null, advantages: a, useRolloutLogprob: false, wholeBatch }, loss, 1, 2);
          return { st, g: await grads(), tokens: batch.tokens };
        };
        const full = await run(seqs, adv);
        const whole = { sequences: 6, tokens: full.tokens };
        const r0 = await run(seqs.slice(0, 3), adv.subarray(0, 3), whole);
        const r1 = await run(seqs.slice(3), adv.subarray(3), whole);
        expect(r0.tokens).not.toBe(r1.tokens);
        const [sum] = await Promise.all([c0.allReduce(Float32Array.from(r0.g)), c1.allReduce(Float32Array.from(r1.g))]);
        const scale = full.g.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const maxDiff = (a: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - full.g[i])), 0) / scale;
        expect(scale).toBeGreaterThan(0);
        expect(maxDiff(sum), aggregation).toBeLessThan(1e-5);
        expect(r0.st.loss + r1.st.loss).toBeCloseTo(full.st.loss, 5);
        if (aggregation === "token-mean") {
          // What the weighting guards against: each rank normalising by its own share, averaged.
          const n0 = await run(seqs.slice(0, 3), adv.subarray(0, 3));
          const n1 = await run(seqs.slice(3), adv.subarray(3));
          expect(maxDiff(n0.g.map((x, i) => (x + n1.g[i]) / 2))).toBeGreaterThan(1e-2);
        }
      }
    } finally {
      c0.close();
      c1.close();
      p.model.dispose();
      be.destroy();
    }
  });
});

/** A reward with spread on a random model's outputs (the fixtures' length reward). */
const reward = join(root, "test", "fixtures", "rewards", "length.mjs");
const ARGS = ["--task", "graphla", "--backend", "cpu", "--threads", "1", "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "24", "--eval-n", "2", "--seed", "3", "--lr", "0.001", "--rewards", `${reward}:1`, "--checkpoint-every", "1", "--dist-timeout", "60"];
const STEPS = 6;

function train(args: string[]) {
  const r = spawnSync(process.execPath, [cli, "train", "--model", model, ...ARGS, ...args], { encoding: "utf8", timeout: 240_000 });
  if (r.status !== 0) throw new Error(`anvil train ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
  return r;
}

function metrics(run: string): Record<string, number>[] {
  return readFileSync(join(run, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.step > 0 && !m.final);
}

async function params(run: string, step: number): Promise<Map<string, Float32Array>> {
  const t = await readSafetensors(join(run, "checkpoints", `step-${step}`, "model.safetensors"));
  return new Map([...t].map(([k, v]) => [k, v.data as Float32Array]));
}

describe("anvil train --nproc", () => {
  let single: string;
  let dual: string;

  beforeAll(() => {
    single = join(work, "single");
    dual = join(work, "dual");
    train(["--out", single, "--steps", String(STEPS)]);
    const r = train(["--out", dual, "--steps", String(STEPS), "--nproc", "2", "--json"]);
    // --json: one object on stdout, from rank 0 only.
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(r.stdout).steps).toBe(STEPS);
  });

  it("makes the single-process step: same gradient and metrics, parameters to float tolerance", async () => {
    const [a] = metrics(single);
    const [b] = metrics(dual);
    for (const k of ["loss", "reward_mean", "reward_std", "entropy", "completion_len_mean", "completion_len_max", "frac_reward_zero_std", "acc", "clip_low", "clip_high", "ratio_min", "ratio_max"]) expect(b[k], k).toBeCloseTo(a[k], 6);
    expect(b.grad_norm).toBeGreaterThan(0);
    expect(Math.abs(b.grad_norm - a.grad_norm) / a.grad_norm).toBeLessThan(1e-5);
    // AdamW's first update is about lr * g / (|g| + 1e-8): where a gradient element is within
    // float rounding of 0 its update may differ by up to 2 lr, so nearly all but not every
    // element agrees to 1e-6. A wrong gradient moves most elements by ~lr.
    const [pa, pb] = [await params(single, 1), await params(dual, 1)];
    let n = 0;
    let off = 0;
    let maxDiff = 0;
    for (const [name, x] of pa) {
      const y = pb.get(name)!;
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i] - y[i]);
        n++;
        maxDiff = Math.max(maxDiff, d);
        if (d > 1e-6) off++;
      }
    }
    expect(off / n).toBeLessThan(1e-3);
    expect(maxDiff).toBeLessThanOrEqual(2.0001e-3);
  });

  it("a killed rank stops the others with an error naming it; --resume reproduces the uninterrupted run", async () => {
    const run = join(work, "killed");
    const child = spawn(process.execPath, [cli, "train", "--model", model, ...ARGS, "--out", run, "--steps", String(STEPS), "--nproc", "2"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    // Kill rank 1 once step 2 is checkpointed.
    while (!existsSync(join(run, "checkpoints", "step-2", "trainer_state.json"))) await new Promise((r) => setTimeout(r, 20));
    const pids = /pids (\d+), (\d+)/.exec(stderr)!;
    process.kill(Number(pids[2]), "SIGKILL");
    const t0 = Date.now();
    const code = await exited;
    expect(code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000); // well under --dist-timeout 60: not a timeout
    expect(stderr).toMatch(/rank 1 \(pid \d+\) was killed by SIGKILL/);
    expect(stderr).toMatch(/rank 0: rank 1 is gone/);
    const done = metrics(run).length;
    expect(done).toBeLessThan(STEPS);

    // Resumed with the multi-node launch: one command per rank, with rank 0's address.
    const master = `127.0.0.1:${await freePort()}`;
    const ranks = [0, 1].map((rank) =>
      spawn(process.execPath, [cli, "train", "--model", model, ...ARGS, "--resume", run, "--rank", String(rank), "--world-size", "2", "--master-addr", master], { stdio: ["ignore", "ignore", "pipe"] }),
    );
    let log = "";
    for (const p of ranks) p.stderr!.on("data", (d) => (log += d));
    const codes = await Promise.all(ranks.map((p) => new Promise<number | null>((r) => p.on("exit", r))));
    expect(codes, log).toEqual([0, 0]);
    expect(metrics(run).map((m) => m.step)).toEqual([...Array(STEPS).keys()].map((i) => i + 1));
    const [x, y] = [await params(dual, STEPS), await params(run, STEPS)];
    for (const [name, a] of x) expect(Buffer.from(y.get(name)!.buffer).equals(Buffer.from(a.buffer)), name).toBe(true);
  });
});
