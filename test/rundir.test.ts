// Run directories and inputs, tried as a hostile user would on the tiny model: one process per
// run directory (a lock that kill -9 cannot leave stale), --out / --resume only on Anvil runs,
// unwritable targets, preflight before anything is written, repair on resume, prompts checked
// against the context, strict --ids, and reward workers that crash mid-run.
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseIds } from "../src/cli/commands/score.js";
import { initModel } from "../src/model/init.js";
import { LOCK_FILE, RUN_MARKER } from "../src/rl/run-dir.js";
import { runTraining } from "../src/rl/run.js";
import { taskCorpus } from "../src/tasks/index.js";

const root = resolve(__dirname, "..");
const cli = join(root, "dist", "src", "cli", "main.js");
const fixture = (name: string) => join(root, "test", "fixtures", "rewards", name);
let work: string;
let model: string;

const SMALL = {
  task: "graphla" as const,
  backend: "cpu" as const,
  threads: 1,
  promptsPerStep: 1,
  groupSize: 2,
  maxNewTokens: 8,
  evalN: 2,
  sftSteps: 0,
  progress: false,
  seed: 3,
};
const quiet = { log: () => {} };
const cliArgs = (out: string, steps: number) =>
  ["train", "--model", model, "--out", out, "--steps", String(steps), "--checkpoint-every", "1", "--task", "graphla", "--backend", "cpu", "--threads", "1",
    "--prompts-per-step", "1", "--group-size", "2", "--max-new-tokens", "8", "--eval-n", "2", "--seed", "3", "--no-progress"];
/** A run that holds still (in its reward calls) once `free` calls per worker are done, until `gate` exists. */
const gated = (gate: string, free: number) => ({
  args: ["--rewards", `correct,${fixture("gate.mjs")}`, "--reward-timeout-ms", "600000"],
  env: { ...process.env, ANVIL_GATE: gate, ANVIL_GATE_FREE: String(free) },
});

type Row = Record<string, number>;
const rows = (run: string): Row[] => readFileSync(join(run, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Row);
const stepRows = (run: string) => rows(run).filter((r) => r.step !== undefined);

/** Resolves when `path` exists; rejects if the child exits first. */
function waitFor(path: string, child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((res, rej) => {
    const t = setInterval(() => {
      if (existsSync(path)) {
        clearInterval(t);
        res();
      }
    }, 10);
    child.on("exit", (code) => {
      clearInterval(t);
      existsSync(path) ? res() : rej(new Error(`the child exited (${code}) before ${path} appeared`));
    });
  });
}

/** A dataset whose ground-truth trajectories fit in 8 tokens, so Anchor injects one per group. */
function shortDataset(name: string, extra = ""): string {
  const file = join(work, name);
  const items = Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `What is ${i} plus ${i}?`, answer: String(2 * i) }));
  writeFileSync(file, items.join("\n") + "\n" + extra);
  return file;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-rundir-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphla", 200), out: model, seed: 1 });
});

describe("one process per run directory", () => {
  it("a second anvil train into the same directory fails fast, naming the lock holder", async () => {
    expect(existsSync(cli), "run `npm run build:ts` first").toBe(true);
    const out = join(work, "concurrent");
    // Held in its first reward call until the other two processes have tried.
    const gate = gated(join(work, "gate-concurrent"), 0);
    const first = spawn(process.execPath, [cli, ...cliArgs(out, 3), ...gate.args], { stdio: ["ignore", "ignore", "pipe"], env: gate.env });
    let firstErr = "";
    first.stderr!.on("data", (d) => (firstErr += d));
    await waitFor(join(out, LOCK_FILE), first);
    const t0 = Date.now();
    const second = spawnSync(process.execPath, [cli, ...cliArgs(out, 3)], { encoding: "utf8" });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(new RegExp(`is in use by pid ${first.pid} on host `));
    expect(Date.now() - t0).toBeLessThan(15_000);
    // --resume while it trains is refused the same way.
    const resumed = spawnSync(process.execPath, [cli, "train", "--resume", out, "--no-progress"], { encoding: "utf8" });
    expect(resumed.stderr).toMatch(/is in use by pid/);
    writeFileSync(gate.env.ANVIL_GATE, "");
    const code = await new Promise((r) => first.on("exit", r));
    expect(code, firstErr).toBe(0);
    expect(stepRows(out).filter((r) => r.step > 0 && !r.final).map((r) => r.step)).toEqual([1, 2, 3]); // one run's rows only
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });

  it("kill -9 of the lock holder, then --resume: the lock is taken over, debris cleaned, logs repaired", async () => {
    const out = join(work, "killed");
    // Held mid-run (step 3 to 5, by how calls fall on the 2 workers) so the kill finds it training.
    const gate = gated(join(work, "gate-killed"), 4);
    const child = spawn(process.execPath, [cli, ...cliArgs(out, 6), ...gate.args], { stdio: "ignore", env: gate.env });
    await waitFor(join(out, "checkpoints", "step-2", "trainer_state.json"), child);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    expect(JSON.parse(readFileSync(join(out, LOCK_FILE), "utf8")).pid).toBe(child.pid); // left behind, its owner dead
    // What a kill can leave: a half-written checkpoint and a torn last metrics line.
    mkdirSync(join(out, "checkpoints", "step-3.tmp-4242"), { recursive: true });
    writeFileSync(join(out, "checkpoints", "step-3.tmp-4242", "model.safetensors"), "partial");
    appendFileSync(join(out, "metrics.jsonl"), '{"step": 3, "reward_me');
    writeFileSync(gate.env.ANVIL_GATE, ""); // the resumed run goes through

    const r = spawnSync(process.execPath, [cli, "train", "--resume", out, "--no-progress"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed \S*step-3\.tmp-4242, left by an interrupted save/);
    expect(r.stderr).toMatch(/metrics\.jsonl: dropped a torn last line/);
    expect(r.stderr).toMatch(new RegExp(`took over \\S*${LOCK_FILE} from pid ${child.pid} on \\S+, which is no longer running`));
    expect(r.stderr).toMatch(/resuming .* from step [2-5]\b/);
    expect(readdirSync(join(out, "checkpoints")).sort()).toEqual(["step-1", "step-2", "step-3", "step-4", "step-5", "step-6"]);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
    const steps = stepRows(out).map((r) => r.step);
    expect(steps).toEqual([0, 1, 2, 3, 4, 5, 6, 6]); // step-0 eval, 6 steps, the final row

    // Resuming the finished run again rewrites the final row, never adds one.
    const again = spawnSync(process.execPath, [cli, "train", "--resume", out, "--no-progress"], { encoding: "utf8" });
    expect(again.status, again.stderr).toBe(0);
    expect(stepRows(out).map((r) => r.step)).toEqual(steps);
    expect(stepRows(out).filter((r) => r.final)).toHaveLength(1);
  });
});

describe("one process per run directory, in-process", () => {
  it("a cancelled worker-thread job leaves no lock behind; a second job into its directory is refused", async () => {
    const dist = join(root, "dist", "src", "index.js");
    const { startTraining } = (await import(dist)) as typeof import("../src/index.js");
    const out = join(work, "job");
    const job = startTraining({ ...SMALL, model, out, steps: 50, checkpointEvery: 50 });
    await new Promise<void>((res) => job.once("step", () => res()));
    await expect(runTraining({ ...SMALL, model, out, steps: 1 }, quiet)).rejects.toThrow(new RegExp(`in use by pid ${process.pid} .*\\(thread \\d+\\)`));
    await job.cancel();
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
  });
});

describe("what a run directory may be", () => {
  it("--out refuses a non-empty directory that is not a run, and touches nothing", async () => {
    const out = join(work, "user-files");
    mkdirSync(out);
    writeFileSync(join(out, "config.json"), '{"mine": true}\n');
    await expect(runTraining({ ...SMALL, model, out, steps: 1 }, quiet)).rejects.toThrow(/not empty and is not an Anvil run.*Choose a new or empty --out/);
    expect(readdirSync(out)).toEqual(["config.json"]);
    expect(readFileSync(join(out, "config.json"), "utf8")).toBe('{"mine": true}\n');
  });

  it("--resume refuses a model directory and anything else that is not a run", async () => {
    const before = readFileSync(join(model, "config.json"), "utf8");
    await expect(runTraining({ resume: model }, quiet)).rejects.toThrow(/not an Anvil run directory .*a model directory\?/);
    expect(readFileSync(join(model, "config.json"), "utf8")).toBe(before);
    expect(existsSync(join(model, LOCK_FILE)) || existsSync(join(model, RUN_MARKER))).toBe(false);
    await expect(runTraining({ resume: join(work, "nowhere") }, quiet)).rejects.toThrow(/no such directory/);
  });

  it("/proc, /sys and files fail at once with a message", async () => {
    for (const out of ["/proc/anvilrun", "/proc/self/anvilrun/deeper", "/sys/anvilrun"]) {
      const t0 = Date.now();
      await expect(runTraining({ ...SMALL, model, out, steps: 1 }, quiet)).rejects.toThrow(/cannot be created or written .*Choose a writable --out/);
      expect(Date.now() - t0).toBeLessThan(5_000);
    }
    const file = join(work, "a-file");
    writeFileSync(file, "x");
    await expect(runTraining({ ...SMALL, model, out: join(file, "run"), steps: 1 }, quiet)).rejects.toThrow(/a part of the path is a file/);
  });

  it("a failed preflight leaves no run directory behind", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rewards: "./no-such-reward.mjs" }, /not found/],
      [{ dataset: shortDataset("bad.jsonl", '{"prompt": "x"}\n') }, /line 7: missing field "answer"/],
      [{ backend: "cuda" }, /cuda|CUDA|GPU/],
      [{ maxNewTokens: 5000 }, /leaves no room for a prompt .* context of 2048 tokens/],
    ];
    for (const [opts, err] of cases) {
      const out = join(work, "preflight");
      await expect(runTraining({ ...SMALL, model, out, steps: 1, ...opts }, quiet)).rejects.toThrow(err);
      expect(existsSync(out), JSON.stringify(opts)).toBe(false);
    }
  });

  it("a run killed before its first checkpoint restarts without duplicate rows", async () => {
    const out = join(work, "no-ckpt");
    await runTraining({ ...SMALL, model, out, steps: 1 }, quiet);
    const { rmSync } = await import("node:fs");
    rmSync(join(out, "checkpoints"), { recursive: true }); // as if killed before step 1 was saved
    rmSync(join(out, RUN_MARKER)); // and written before runs had a marker: its config.json still names it
    await runTraining({ resume: out }, quiet);
    expect(stepRows(out).map((r) => r.step)).toEqual([0, 1, 1]);
    expect(existsSync(join(out, RUN_MARKER))).toBe(true);
    // --out onto it starts over the same way (it is a run, with nothing to resume).
    rmSync(join(out, "checkpoints"), { recursive: true });
    await runTraining({ ...SMALL, model, out, steps: 1 }, quiet);
    expect(stepRows(out).map((r) => r.step)).toEqual([0, 1, 1]);
  });
});

describe("inputs checked against the model", () => {
  const longLine = (words: number) => JSON.stringify({ prompt: "premise ".repeat(words) + "What is 1 plus 1?", answer: "2" }) + "\n";

  it("a prompt longer than the context is an error naming its line, or cut with truncatePrompts", async () => {
    const data = shortDataset("long.jsonl", longLine(5000));
    const out = join(work, "long");
    const t0 = Date.now();
    await expect(runTraining({ ...SMALL, model, out, dataset: data, steps: 1 }, quiet)).rejects.toThrow(
      /long\.jsonl: 1 prompt is too long: with --max-new-tokens 8 it exceeds the model's context length 2048[\s\S]*line 7 \(id long\.jsonl:7\): prompt of \d+ tokens[\s\S]*--truncate-prompts/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(existsSync(out)).toBe(false);
    // With the default model, made inside the run directory, the check comes after making it:
    // the directory it created goes again.
    const { model: _, ...noModel } = { ...SMALL, model };
    await expect(runTraining({ ...noModel, out: join(out, "nested"), dataset: data, steps: 1 }, quiet)).rejects.toThrow(/line 7/);
    expect(existsSync(out)).toBe(false);
    const lines: string[] = [];
    await runTraining({ ...SMALL, model, out, dataset: data, steps: 1, truncatePrompts: true }, { log: (l) => lines.push(l) });
    expect(lines.join("\n")).toMatch(/--truncate-prompts: cut 1 of 7 prompts of \S+long\.jsonl to their last 2040 tokens \(first: line 7/);
  });

  it("score --ids: strict decimal ids, within the vocabulary and the context", () => {
    expect(parseIds("1, 2,3", 10)).toEqual([1, 2, 3]);
    for (const bad of ["0x10", "1e1", "1.0", "-1", "", " ", "10", "1_0", "Infinity"]) expect(() => parseIds(`1,${bad}`, 10), bad).toThrow(/item 2 .* is not a decimal token id in \[0, 10\)/);
    const run = (ids: string) => spawnSync(process.execPath, [cli, "score", "--model", model, "--ids", ids, "--backend", "cpu", "--threads", "1"], { encoding: "utf8" });
    let r = run("0x10,1e1");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--ids: item 1 \("0x10"\) is not a decimal token id/);
    r = run(Array.from({ length: 3000 }, () => "5").join(","));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/3000 tokens exceed the model's context length 2048/);
    r = run("5,6,7");
    expect(r.status, r.stderr).toBe(0);
  });
});

describe("reward workers that crash", () => {
  it("a module killing its worker every tenth call over 30 steps: no step lost, every failure counted", async () => {
    const out = join(work, "faults");
    const crashLog = join(work, "crashes.log");
    process.env.ANVIL_CRASH_LOG = crashLog;
    const lines: string[] = [];
    try {
      await runTraining(
        { ...SMALL, model, out, dataset: shortDataset("faults.jsonl"), steps: 30, checkpointEvery: 30, rewards: `correct,${fixture("crash-every-10.mjs")}:0.1`, rewardHeapMb: 32, rewardTimeoutMs: 20_000 },
        { log: (l) => lines.push(l) },
      );
    } finally {
      delete process.env.ANVIL_CRASH_LOG;
    }
    const steps = stepRows(out).filter((r) => r.step > 0 && !r.final);
    expect(steps.map((r) => r.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(steps.some((r) => r.anchor_frac > 0)).toBe(true); // anchors were scored too
    const crashes = readFileSync(crashLog, "utf8").split("\n").filter(Boolean).length;
    expect(crashes).toBeGreaterThanOrEqual(5); // 30 steps x (2 rollouts + 1 anchor) = 90 calls over 2 workers
    expect(steps.reduce((a, r) => a + r.reward_failures, 0)).toBe(crashes);
    expect(lines.filter((l) => /ran out of memory .* its worker was replaced/.test(l))).toHaveLength(crashes);
  }, 120_000);

  it("failures on anchor samples are counted", async () => {
    const out = join(work, "anchor-fail");
    await runTraining({ ...SMALL, model, out, dataset: shortDataset("anchors.jsonl"), steps: 3, rewards: `correct,${fixture("fails-on-anchor.mjs")}` }, quiet);
    const steps = stepRows(out).filter((r) => r.step > 0 && !r.final);
    expect(steps.map((r) => r.anchor_frac)).toEqual([0.5, 0.5, 0.5]); // one anchor in each group of 2
    expect(steps.map((r) => r.reward_failures)).toEqual([1, 1, 1]);
  });
});
