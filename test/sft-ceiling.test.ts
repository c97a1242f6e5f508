// `anvil experiment sft-ceiling` killed after an evaluation continues from it: the same curve as
// a run that was never interrupted; a finished one asked for more steps goes on.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runCeiling, type CeilingOptions } from "../src/experiment/sft-ceiling.js";
import { readJsonFileSync } from "../src/util/json-file.js";

describe("experiment sft-ceiling", () => {
  it("link sheets are refused where they would not be used: the RL table's weak starts", () => {
    const cli = join(resolve(__dirname, ".."), "dist", "src", "cli", "main.js");
    const r = spawnSync(process.execPath, [cli, "experiment", "anchor-vs-grpo", "--sft-link-sheets", "2", "--out", join(tmpdir(), "anvil-never-made")], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--sft-link-sheets is for sft-ceiling only/);
  });

  it("resumes a killed run from its last evaluation, reproducing the uninterrupted curve", async () => {
    const opts = (out: string, log: (l: string) => void): CeilingOptions => ({
      tasks: ["graphli"], preset: "tiny", steps: 4, batch: 2, sheets: 0, lr: 6e-3, minDepth: 1, maxDepth: 1, evalEvery: 2, evalN: 2, threads: 1, out, log,
    });
    const [whole] = await runCeiling(opts(mkdtempSync(join(tmpdir(), "anvil-ceil-")), () => {}));
    const out = mkdtempSync(join(tmpdir(), "anvil-ceil-"));
    // "Killed" right after the step-2 evaluation was saved (the log line follows the save).
    await expect(runCeiling(opts(out, (l) => { if (/step 2 /.test(l)) throw new Error("killed"); }))).rejects.toThrow("killed");
    const lines: string[] = [];
    const [resumed] = await runCeiling(opts(out, (l) => lines.push(l)));
    expect(lines[0]).toMatch(/continuing from step 2/);
    expect(resumed!.curve.map((p) => p.step)).toEqual([2, 4]);
    expect(resumed!.curve.map((p) => p.loss)).toEqual(whole!.curve.map((p) => p.loss));
    expect(resumed!.curve.map((p) => p.acc)).toEqual(whole!.curve.map((p) => p.acc));

    // A finished run asked for more steps continues from its end instead of returning the old table.
    const more: string[] = [];
    const [longer] = await runCeiling({ ...opts(out, (l) => more.push(l)), steps: 6 });
    expect(more[0]).toMatch(/finished at step 4; continuing to 6/);
    expect(longer!.curve.map((p) => p.step)).toEqual([2, 4, 6]);
    const [again] = await runCeiling(opts(out, () => {}));
    expect(again!.curve.map((p) => p.step)).toEqual([2, 4, 6]); // asked for fewer: the table as it is
    // Without the checkpoint to go on from, it refuses rather than train again over the table.
    rmSync(join(out, "graphli", "model", "optimizer.safetensors"));
    await expect(runCeiling({ ...opts(out, () => {}), steps: 8 })).rejects.toThrow(/finished run but no checkpoint/);
    expect(readJsonFileSync<{ curve: unknown[] }>(join(out, "graphli", "results.json")).curve).toHaveLength(3);
  }, 300_000);
});
