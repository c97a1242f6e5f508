// The memory bench harness on a small model (the paper-sized cases take far longer; they run
// from `anvil bench memory`): one RL step per mode, the floors and the LoRA parameter count.
import { describe, expect, it } from "vitest";
import { floorBytes, loraParams, matrixParams, PAPER_MODELS, runMemoryCase, type MemoryCase } from "../bench/memory.js";
import { parameterShapes } from "../src/model/types.js";

const small = { ...PAPER_MODELS["qwen3-0.6b"], vocabSize: 97, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8 };
const base: MemoryCase = { model: "custom", config: small, mode: "lora", prompts: 2, group: 3, promptLen: 5, newTokens: 4, loraR: 4, microBatch: 4, generationBatch: 4, threads: 1, gradientCheckpointing: true };

describe("bench memory", () => {
  it("the paper's shapes: parameter counts of Qwen3-0.6B, Qwen3-1.7B and Qwen2.5-3B", () => {
    const count = (name: string) => [...parameterShapes(PAPER_MODELS[name]).values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    expect(count("qwen3-0.6b") / 1e6).toBeCloseTo(596.05, 1);
    expect(count("qwen3-1.7b") / 1e6).toBeCloseTo(1720.6, 0);
    expect(count("qwen2.5-3b") / 1e6).toBeCloseTo(3085.9, 0);
  });

  it.each(["lora", "full"] as const)("one RL step (%s) reports time, decode speed, peak RSS and the floor", async (mode) => {
    const r = await runMemoryCase({ ...base, mode });
    expect(r.trainedParams).toBe(mode === "lora" ? loraParams(small, 4) : r.params);
    // LoRA's frozen base is bf16 by default, as in the trainers.
    expect(r.frozenDtype).toBe(mode === "lora" ? "bf16" : "f32");
    expect(r.floorBytes).toBe(floorBytes(r.params, mode === "lora" ? r.trainedParams : 0, mode, mode === "lora" ? matrixParams(small) : 0));
    for (const k of ["stepSeconds", "rolloutSeconds", "refSeconds", "updateSeconds", "decodeTokensPerSecond"] as const) expect(r[k], k).toBeGreaterThan(0);
    expect(r.peakRssBytes).toBeGreaterThan(r.floorBytes);
    expect(r.checkpointing).toBe(true);
  });

  it("LoRA with the frozen base in f32 or bf16: the floor counts 4 or 2 bytes per frozen matrix parameter", async () => {
    const f32 = await runMemoryCase({ ...base, frozenDtype: "f32" });
    const bf16 = await runMemoryCase({ ...base, frozenDtype: "bf16" });
    expect(f32.frozenDtype).toBe("f32");
    expect(f32.floorBytes - bf16.floorBytes).toBe(2 * matrixParams(small));
    expect(matrixParams(small)).toBe(97 * 32 + 2 * (32 * 32 + 2 * 16 * 32 + 32 * 32 + 3 * 32 * 48));
  });
});
