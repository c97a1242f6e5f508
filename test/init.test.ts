import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initModel, INIT_STD, type InitModelResult } from "../src/model/init.js";
import { loadConfig } from "../src/model/config.js";
import { loadWeights, readSafetensorsHeader } from "../src/model/safetensors.js";
import { Tokenizer } from "../src/model/tokenizer.js";
import { parameterShapes } from "../src/model/types.js";
import { Rng } from "../src/util/rng.js";
import { syntheticCorpus } from "./helpers/corpus.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { Policy } from "../src/rl/policy.js";

let root: string;
let result: InitModelResult;
const corpus = syntheticCorpus(300, 5);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "anvil-init-"));
  result = await initModel({ preset: "tiny", corpus, out: join(root, "tiny"), seed: 42, attentionInit: "random" });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("initModel", () => {
  it("writes a tiny Qwen3 model that loads back with matching shapes (random attention init)", async () => {
    const dir = join(root, "tiny");
    const config = await loadConfig(dir);
    expect(config).toMatchObject({
      architecture: "qwen3",
      hiddenSize: 128,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      intermediateSize: 384,
      tieWordEmbeddings: true,
      qkNorm: true,
    });
    const tokenizer = await Tokenizer.load(dir);
    expect(config.vocabSize).toBe(tokenizer.vocabSize);
    expect(config.eosTokenIds).toEqual([tokenizer.imEndId]);

    const shapes = parameterShapes(config);
    const weights = await loadWeights(dir, shapes);
    expect([...weights.keys()]).toEqual([...shapes.keys()]);
    let count = 0;
    for (const [name, shape] of shapes) {
      const w = weights.get(name)!;
      expect(w.length).toBe(shape.reduce((a, b) => a * b, 1));
      count += w.length;
      if (name.endsWith("norm.weight")) expect(w.every((x) => x === 1)).toBe(true);
    }
    expect(count).toBe(result.numParams);
    const header = await readSafetensorsHeader(join(dir, "model.safetensors"));
    expect(header.metadata?.["format"]).toBe("pt");
    expect([...header.tensors.values()].every((t) => t.dtype === "F32")).toBe(true);

    // Matrices are N(0, 0.02^2): check mean and std over the embedding.
    const emb = weights.get("model.embed_tokens.weight")!;
    const mean = emb.reduce((a, b) => a + b, 0) / emb.length;
    const std = Math.sqrt(emb.reduce((a, b) => a + (b - mean) ** 2, 0) / emb.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(Math.abs(std - INIT_STD) / INIT_STD).toBeLessThan(0.05);

    const gen = JSON.parse(await readFile(join(dir, "generation_config.json"), "utf8"));
    expect(gen.eos_token_id).toEqual([tokenizer.imEndId, tokenizer.padTokenId]);
    expect(gen.pad_token_id).toBe(tokenizer.padTokenId);
  });

  it("is reproducible from the seed and differs across seeds", async () => {
    const made = (name: string, seed: number) => initModel({ preset: "tiny", corpus, out: join(root, name), seed });
    const [again, , other] = [await made("ind", 42), await made("ind-again", 42), await made("ind-other", 43)];
    const a = await readFile(join(root, "ind", "model.safetensors"));
    expect((await readFile(join(root, "ind-again", "model.safetensors"))).equals(a)).toBe(true);
    expect((await readFile(join(root, "ind-other", "model.safetensors"))).equals(a)).toBe(false);
    expect(again.numParams).toBe(other.numParams);
  });

  it("refuses to overwrite unless asked, and validates options", async () => {
    const out = join(root, "tiny");
    await expect(initModel({ preset: "tiny", corpus, out, seed: 1 })).rejects.toThrow(/already holds a model.*config\.json/);
    await initModel({ preset: "tiny", corpus, out: join(root, "ow"), seed: 1 });
    await initModel({ preset: "tiny", corpus, out: join(root, "ow"), seed: 2, overwrite: true });
    await expect(initModel({ preset: "huge" as "tiny", corpus, out: join(root, "x"), seed: 1 })).rejects.toThrow(/unknown preset "huge"/);
    await expect(initModel({ preset: "tiny", corpus: [], out: join(root, "x"), seed: 1 })).rejects.toThrow(/corpus must be a non-empty/);
  });

  it("small preset has the documented shape", async () => {
    const r = await initModel({ preset: "small", corpus, out: join(root, "small"), seed: 1 });
    expect(r.config).toMatchObject({ hiddenSize: 384, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 1024 });
  });
});

describe("induction init", () => {
  // Attention weights of layer `l`, kv group 0's first query head, on ids (one sequence), from the
  // model's own q and k (after q/k-norm and RoPE): row i = query position, column j <= i.
  async function attention(dir: string, ids: number[], l: number): Promise<number[][]> {
    const be = new CpuBackend({ threads: 1 });
    const p = await Policy.load(dir, be);
    const c = p.model.config, T = ids.length;
    const acts = p.model.forward(Int32Array.from(ids), 1, T, {});
    const q = await be.read(acts.blocks[l]!.q), k = await be.read(acts.blocks[l]!.k);
    acts.dispose();
    const qD = c.numHeads * c.headDim, kD = c.numKvHeads * c.headDim;
    return Array.from({ length: T }, (_, i) => {
      const s = Array.from({ length: i + 1 }, (_, j) => {
        let d = 0;
        for (let x = 0; x < c.headDim; x++) d += q[i * qD + x]! * k[j * kD + x]!;
        return d / Math.sqrt(c.headDim);
      });
      const m = Math.max(...s), e = s.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b);
      return e.map((v) => v / z);
    });
  }
  // 40 distinct tokens, then the same 40 again: the induction head at the second copy of a token
  // should look at the token that followed its first copy.
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  async function heads(dir: string): Promise<{ prev: number; induction: number }> {
    const n = 40, first = Array.from({ length: n }, (_, i) => 20 + ((i * 37) % 200));
    const ids = [...first, ...first];
    const a0 = await attention(dir, ids, 0), a1 = await attention(dir, ids, 1);
    return {
      prev: mean(a0.slice(1).map((row, i) => row[i]!)),
      induction: mean(a1.slice(n, 2 * n - 1).map((row, i) => row[i + 1]!)),
    };
  }

  it("starts layer 0 with a previous-token head and layer 1 with an induction head", async () => {
    const wired = await heads(join(root, "ind"));
    expect(wired.prev).toBeGreaterThan(0.95);
    expect(wired.induction).toBeGreaterThan(0.4);
    const random = await heads(join(root, "tiny"));
    expect(random.prev).toBeLessThan(0.2);
    expect(random.induction).toBeLessThan(0.2);
  });

  it("refuses a model it cannot wire", async () => {
    await expect(initModel({ preset: "tiny", corpus, out: join(root, "one-layer"), seed: 1, shape: { numLayers: 1 } })).rejects.toThrow(/at least 2 layers/);
    await initModel({ preset: "tiny", corpus, out: join(root, "one-layer-random"), seed: 1, shape: { numLayers: 1 }, attentionInit: "random" });
  });
});

describe("Rng", () => {
  it("is reproducible, restores state mid-stream (including the spare normal)", () => {
    const a = new Rng(123);
    a.uniform();
    a.normal(); // leaves a spare normal cached
    const state = a.getState();
    expect(state.spareNormal).not.toBeNull();
    const xs = [a.normal(), a.uniform(), a.below(10), a.normal()];
    const b = Rng.fromState(JSON.parse(JSON.stringify(state)));
    expect([b.normal(), b.uniform(), b.below(10), b.normal()]).toEqual(xs);
    expect(new Rng(123).nextU32()).toBe(new Rng(123).nextU32());
    expect(new Rng(123).nextU32()).not.toBe(new Rng(124).nextU32());
  });

  it("draws have the right moments and below() is unbiased", () => {
    const r = new Rng(9);
    const n = 200_000;
    let s = 0, s2 = 0, u = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
      u += r.uniform();
    }
    expect(Math.abs(s / n)).toBeLessThan(0.01);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.015);
    expect(Math.abs(u / n - 0.5)).toBeLessThan(0.003);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[r.below(7)]++;
    // chi-square with 6 dof: 99.9% quantile is 22.5
    const chi = counts.reduce((acc, c) => acc + (c - 10_000) ** 2 / 10_000, 0);
    expect(chi).toBeLessThan(22.5);
    const shuffled = r.shuffle([1, 2, 3, 4, 5, 6]);
    expect([...shuffled].sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("matches the xoshiro128** reference stream", () => {
    // First outputs of the reference C code (prng.di.unimi.it/xoshiro128starstar.c) from state (1, 2, 3, 4).
    const r = Rng.fromState({ s: [1, 2, 3, 4], spareNormal: null });
    expect(XOSHIRO_REF.map(() => r.nextU32())).toEqual(XOSHIRO_REF);
  });

  it("validates state", () => {
    expect(() => Rng.fromState({ s: [0, 0, 0, 0], spareNormal: null })).toThrow(/all zero/);
    expect(() => Rng.fromState({ s: [1, 2, 3] as never, spareNormal: null })).toThrow(/four uint32/);
    expect(() => new Rng(NaN)).toThrow(/finite/);
  });
});

const XOSHIRO_REF = [11520, 0, 5927040, 70819200, 2031721883, 1637235492];
