import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FULL, QUICK, runExperiment } from "../src/experiment/anchor-vs-grpo.js";
import { savedWeakDir, savedWeakStart, weakFingerprint } from "../src/experiment/saved-weak.js";

describe("saved weak starts", () => {
  it("fingerprints the task, preset and depth", () => {
    const la = weakFingerprint("graphla", "tiny", 2);
    expect(weakFingerprint("graphla", "tiny", 2)).toBe(la);
    expect(weakFingerprint("graphli", "tiny", 2)).not.toBe(la);
    expect(weakFingerprint("graphla", "tiny", 3)).not.toBe(la);
    expect(weakFingerprint("graphla", "small", 2)).not.toBe(la);
  });

  // --quick takes these instead of 15-50 minutes of SFT; a change to a task's items, traces or
  // tokenizer makes them stale (--quick then falls back to SFT). Remake them with
  // `anvil experiment anchor-vs-grpo --tasks T` and copy OUT/T/weak here (README, "--quick").
  it.each(["graphla", "graphli"] as const)("the package's %s weak start was made for this version", (task) => {
    const lines: string[] = [];
    expect(savedWeakStart(task, "tiny", 2, (l) => lines.push(l)), lines.join("\n")).toBe(savedWeakDir(task));
    expect(savedWeakStart(task, "tiny", 3, (l) => lines.push(l))).toBeNull();
    expect(lines.at(-1)).toMatch(/making a new one by SFT/);
    const meta = JSON.parse(readFileSync(join(savedWeakDir(task), "weak.json"), "utf8")) as { info: { task: string } };
    expect(meta.info.task).toBe(task);
  });

  it("is what --quick starts from: no SFT, the weak start checked and evaluated as its own", async () => {
    const out = mkdtempSync(join(tmpdir(), "anvil-saved-weak-"));
    const lines: string[] = [];
    const res = await runExperiment({ ...FULL, ...QUICK, tasks: ["graphla"], methods: [], evalN: 2, probeN: 2, out, backend: "cpu", threads: 1, log: (l) => lines.push(l) });
    expect(res.weak).toHaveLength(1);
    expect(res.weak[0]).toMatchObject({ task: "graphla", sftSteps: 0, from: savedWeakDir("graphla") });
    expect(Object.keys(res.weak[0]!.eval)).toContain("precision");
    expect(lines.join("\n")).toMatch(/the weak start is the saved one/);
    expect(readFileSync(join(out, "graphla", "weak", "model.safetensors")).equals(readFileSync(join(savedWeakDir("graphla"), "model.safetensors")))).toBe(true);
  }, 120_000);
});
