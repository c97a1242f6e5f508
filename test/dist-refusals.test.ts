// Combinations data-parallel training does not support yet are refused before any work: no run
// directory, no model, no SFT.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SoloCollective, type Collective } from "../src/distributed/collective.js";
import { OptionsError } from "../src/rl/options.js";
import { runTraining } from "../src/rl/run.js";

const work = mkdtempSync(join(tmpdir(), "anvil-dist-refusals-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Rank 0 of a world of two; the refusals come before any collective call. */
const rankZeroOfTwo = Object.assign(new SoloCollective(), { worldSize: 2 }) as unknown as Collective;

describe("data parallel refuses, before any work", () => {
  it.each([
    ["LoRA", { loraR: 8 }, /LoRA adapters with several data-parallel ranks/],
    ["rollout servers", { rolloutServer: "http://127.0.0.1:9" }, /--rollout-server with several data-parallel ranks/],
  ] as const)("%s with two ranks", async (_what, extra, message) => {
    const out = join(work, String(_what).replace(/ /g, "-"));
    await expect(runTraining({ out, promptsPerStep: 2, ...extra }, { log: () => {} }, rankZeroOfTwo)).rejects.toThrow(message);
    await expect(runTraining({ out, promptsPerStep: 2, ...extra }, { log: () => {} }, rankZeroOfTwo)).rejects.toBeInstanceOf(OptionsError);
    expect(existsSync(out)).toBe(false);
  });
});
