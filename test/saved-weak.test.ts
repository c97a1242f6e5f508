import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
});
