// The decoder against an independent PyTorch implementation (test/fixtures/make_model_fixtures.py):
// hidden states, logits, loss and every parameter gradient, printing the max abs difference
// per tensor (llm.c style); finite differences of the whole model; gradient checkpointing;
// KV-cache generation against full forward passes.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import type { CpuBackend } from "../src/backend/cpu.js";
import { generate } from "../src/model/generate.js";
import { Model } from "../src/model/model.js";
import { fixtureWeights, lmLoss, readModelFixture, type ModelFixture } from "./helpers/model-fixture.js";
import { batchFromTargets } from "../src/rl/batch.js";
import { scoreTokens } from "../src/rl/step.js";
import { testBackend } from "./helpers/naive-ops.js";

const here = dirname(fileURLToPath(import.meta.url));
const NAMES = ["qwen3", "qwen2", "llama", "qwen3_long"] as const;
const fixtures = new Map<string, ModelFixture>(NAMES.map((n) => [n, readModelFixture(join(here, "fixtures", `model_${n}.bin`))]));

let be: CpuBackend;
beforeAll(() => {
  const { backend, naive } = testBackend();
  be = backend;
  if (naive.length) console.log(`model.test: naive TS ops in use for: ${naive.join(", ")}`);
});

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function read(t: { size: number }): Float32Array {
  return be.readSync(t as never) as Float32Array;
}
/** Compares with tolerance atol + rtol * max|ref|, printing the difference. */
function compare(label: string, got: ArrayLike<number>, ref: ArrayLike<number>, rtol = 2e-4, atol = 2e-5): void {
  const d = maxAbsDiff(got, ref);
  const scale = maxAbs(ref);
  const ok = d <= atol + rtol * scale;
  console.log(`${ok ? "OK " : "BAD"} ${label.padEnd(52)} max|diff| ${d.toExponential(2)}  max|ref| ${scale.toExponential(2)}`);
  expect(d, label).toBeLessThanOrEqual(atol + rtol * scale);
}

function load(name: string): { f: ModelFixture; model: Model; ids: Int32Array; targets: Int32Array } {
  const f = fixtures.get(name)!;
  const model = Model.fromWeights(be, f.config, fixtureWeights(f));
  return { f, model, ids: f.tensors.get("ids")!.data as Int32Array, targets: f.tensors.get("targets")!.data as Int32Array };
}

describe.each(NAMES)("%s against PyTorch", (name) => {
  it("forward: hidden and logits", () => {
    const { f, model, ids } = load(name);
    const acts = model.forward(ids, f.B, f.T);
    compare(`${name} hidden`, read(acts.hidden), f.tensors.get("hidden")!.data);
    const logits = model.logits(acts.hidden);
    compare(`${name} logits`, read(logits), f.tensors.get("logits")!.data);
    expect(acts.bytes).toBeGreaterThan(0);
    acts.dispose();
    expect(acts.disposed).toBe(true);
  });

  it("loss and every gradient (through the fused log-prob path)", async () => {
    const { f, model, ids, targets } = load(name);
    const { loss, tokens } = await lmLoss(model, ids, targets, f.B, f.T);
    expect(tokens).toBe(targets.filter((t) => t >= 0).length);
    compare(`${name} loss`, [loss], f.tensors.get("loss")!.data, 1e-5, 1e-5);
    let count = 0;
    for (const [pname] of model.params) {
      const ref = f.tensors.get(`grad/${pname}`);
      expect(ref, `fixture gradient for ${pname}`).toBeDefined();
      compare(`${name} grad ${pname}`, read(model.grad(pname)), ref!.data, 5e-4, 1e-6);
      count++;
    }
    expect(count).toBe(model.params.size);
  });

  it("gradient checkpointing gives identical gradients and holds less memory", async () => {
    const { f, model, ids, targets } = load(name);
    await lmLoss(model, ids, targets, f.B, f.T);
    const plain = new Map([...model.grads].map(([n, g]) => [n, read(g)]));
    const plainPeak = model.activationMemory.peak;
    model.zeroGrads();
    model.activationMemory.resetPeak();
    await lmLoss(model, ids, targets, f.B, f.T, { checkpointing: true });
    for (const [n, g] of model.grads) expect(maxAbsDiff(read(g), plain.get(n)!), n).toBe(0);
    // Peak bytes of activations + backward scratch over the whole step, counted per allocation.
    console.log(`${name} step peak activation bytes: full ${plainPeak}, checkpointed ${model.activationMemory.peak}`);
    if (f.config.numLayers > 1) expect(model.activationMemory.peak).toBeLessThan(plainPeak);
    expect(model.activationMemory.live).toBe(0);
    const a1 = model.forward(ids, f.B, f.T);
    const a2 = model.forward(ids, f.B, f.T, { checkpointing: true });
    console.log(`${name} activation bytes: full ${a1.bytes}, checkpointed ${a2.bytes}`);
    expect(model.activationBytes(f.B, f.T)).toBe(a1.bytes);
    expect(model.activationBytes(f.B, f.T, { checkpointing: true })).toBe(a2.bytes);
    if (f.config.numLayers > 1) expect(a2.bytes).toBeLessThan(a1.bytes);
    expect(maxAbsDiff(read(a1.hidden), read(a2.hidden))).toBe(0);
    a1.dispose();
    a2.dispose();
  });
});

describe.each(NAMES)("%s inference-only forward", (name) => {
  it("noGrad forward gives the same hidden with less memory, and refuses backward", () => {
    const { f, model, ids } = load(name);
    const a1 = model.forward(ids, f.B, f.T);
    const a2 = model.forward(ids, f.B, f.T, { noGrad: true });
    expect(maxAbsDiff(read(a1.hidden), read(a2.hidden))).toBe(0);
    expect(a2.bytes).toBeLessThan(a1.bytes);
    expect(model.activationBytes(f.B, f.T, { noGrad: true })).toBe(a2.bytes);
    expect(() => model.backward(a2, a1.hidden)).toThrow(/noGrad/);
    a1.dispose();
    a2.dispose();
  });

  it("scoreTokens equals log-softmax of the PyTorch logits at the targets, holding no training activations", async () => {
    const { f, model, ids, targets } = load(name);
    const { logprob, entropy } = await scoreTokens(model, batchFromTargets(ids, targets, f.B, f.T), 1, f.B);
    expect(model.activationMemory.peak).toBe(model.activationBytes(f.B, f.T, { noGrad: true }));
    const logits = f.tensors.get("logits")!.data as Float32Array;
    const V = f.config.vocabSize;
    const wantLp: number[] = [];
    const wantH: number[] = [];
    for (let i = 0; i < f.B * f.T; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      let m = -Infinity;
      for (const v of row) m = Math.max(m, v);
      let s = 0;
      for (const v of row) s += Math.exp(v - m);
      const lse = m + Math.log(s);
      let h = 0;
      for (const v of row) h -= Math.exp(v - lse) * (v - lse);
      wantLp.push(targets[i] < 0 ? 0 : row[targets[i]] - lse);
      wantH.push(targets[i] < 0 ? 0 : h);
    }
    compare(`${name} token logprobs`, logprob, wantLp, 1e-4, 1e-5);
    compare(`${name} token entropies`, entropy, wantH, 1e-4, 1e-5);
  });
});

describe("finite differences of the whole model", () => {
  // float32 forward: central differences with a step large enough to beat rounding.
  const cases: [string, string, number][] = [
    ["qwen3", "model.embed_tokens.weight", 5],
    ["qwen3", "model.layers.0.self_attn.q_norm.weight", 3],
    ["qwen3", "model.layers.1.self_attn.k_proj.weight", 17],
    ["qwen3", "model.layers.0.mlp.down_proj.weight", 40],
    ["qwen2", "model.layers.1.self_attn.q_proj.bias", 6],
    ["qwen2", "model.layers.0.self_attn.v_proj.bias", 2],
    ["qwen2", "lm_head.weight", 100],
    ["qwen2", "model.norm.weight", 7],
    ["llama", "model.layers.2.post_attention_layernorm.weight", 4],
    ["llama", "model.layers.0.self_attn.o_proj.weight", 33],
  ];
  it.each(cases)("%s %s[%i]", async (name, pname, idx) => {
    const { f, model, ids, targets } = load(name);
    const ref = (f.tensors.get(`grad/${pname}`)!.data as Float32Array)[idx];
    // Pick an entry with a real gradient: the fixture's gradient is the oracle for which.
    await lmLoss(model, ids, targets, f.B, f.T);
    const analytic = read(model.grad(pname))[idx];
    const p = model.params.get(pname)!;
    const w = read(p);
    const eps = 1e-2 * Math.max(1, Math.abs(w[idx]));
    const lossAt = async (v: number) => {
      be.write(p, Float32Array.of(v), idx);
      model.zeroGrads();
      return (await lmLoss(model, ids, targets, f.B, f.T)).loss;
    };
    const lp = await lossAt(w[idx] + eps);
    const lm = await lossAt(w[idx] - eps);
    be.write(p, Float32Array.of(w[idx]), idx);
    const fd = (lp - lm) / (2 * eps);
    console.log(`fd ${name} ${pname}[${idx}]: analytic ${analytic.toExponential(4)} fd ${fd.toExponential(4)} torch ${ref.toExponential(4)}`);
    expect(Math.abs(fd - analytic)).toBeLessThanOrEqual(2e-3 + 3e-2 * Math.abs(analytic));
  });
});

describe("generation", () => {
  const prompts = [[1, 2, 3, 4, 5], [7], [9, 8, 7]];

  it.each(NAMES)("%s: greedy decoding equals argmax of full forward logits", async (name) => {
    const { model } = load(name);
    const gens = await generate(model, prompts, { maxNewTokens: 6, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 1, eosIds: [] });
    for (let b = 0; b < prompts.length; b++) {
      const g = gens[b];
      expect(g.finishReason).toBe("length");
      expect(g.tokens.length).toBe(6);
      const seq = [...prompts[b], ...g.tokens];
      const T = seq.length - 1;
      const acts = model.forward(Int32Array.from(seq.slice(0, T)), 1, T);
      const logits = read(model.logits(acts.hidden));
      acts.dispose();
      const V = model.config.vocabSize;
      for (let i = 0; i < g.tokens.length; i++) {
        const row = logits.subarray((prompts[b].length - 1 + i) * V, (prompts[b].length + i) * V);
        let best = 0;
        for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
        expect(g.tokens[i], `row ${b} token ${i}`).toBe(best);
        // logprob: plain softmax at temperature 1.
        let m = -Infinity;
        for (const v of row) m = Math.max(m, v);
        let s = 0;
        for (const v of row) s += Math.exp(v - m);
        expect(g.logprobs[i]).toBeCloseTo(row[best] - m - Math.log(s), 4);
      }
    }
  });

  it("seeded sampling is reproducible and independent of batch composition", async () => {
    const { model } = load("qwen2");
    const sampling = { temperature: 1.3, topK: 0, topP: 1, minP: 0 };
    const a = await generate(model, prompts, { maxNewTokens: 8, sampling, seed: 42, eosIds: [] });
    const b = await generate(model, prompts, { maxNewTokens: 8, sampling, seed: 42, eosIds: [] });
    expect(b).toEqual(a);
    const alone = await generate(model, [prompts[2]], { maxNewTokens: 8, sampling, seed: 42, eosIds: [], rowKeys: [2] });
    expect(alone[0].tokens).toEqual(a[2].tokens);
    for (let i = 0; i < 8; i++) expect(alone[0].logprobs[i]).toBeCloseTo(a[2].logprobs[i], 4);
    const other = await generate(model, prompts, { maxNewTokens: 8, sampling, seed: 43, eosIds: [] });
    expect(other.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
  });

  it("stops at EOS and at stop sequences, and freezes finished rows", async () => {
    const { model } = load("qwen3");
    const greedy = { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true };
    const ref = await generate(model, prompts, { maxNewTokens: 6, sampling: greedy, seed: 0, eosIds: [] });
    const eosTok = ref[0].tokens[2];
    const seen: number[] = [];
    const gens = await generate(model, prompts, {
      maxNewTokens: 6,
      sampling: greedy,
      seed: 0,
      eosIds: [eosTok],
      stopSequences: [ref[1].tokens.slice(1, 3)],
      onToken: (row, tok) => row === 0 && seen.push(tok),
    });
    const firstEos = ref[0].tokens.indexOf(eosTok);
    expect(gens[0].finishReason).toBe("eos");
    expect(gens[0].tokens).toEqual(ref[0].tokens.slice(0, firstEos + 1));
    expect(seen).toEqual(gens[0].tokens);
    for (let b = 1; b < prompts.length; b++) {
      const g = gens[b];
      expect(ref[b].tokens.slice(0, g.tokens.length)).toEqual(g.tokens);
      if (g.finishReason === "length") expect(g.tokens.length).toBe(6);
    }
    expect(["stop", "eos"]).toContain(gens[1].finishReason);
  });

  it("compacting finished rows does not change any sequence", async () => {
    const { model } = load("qwen3");
    const sampling = { temperature: 1.2, topK: 0, topP: 0.95, minP: 0 };
    const many = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11], [3, 3]];
    const free = await generate(model, many, { maxNewTokens: 10, sampling, seed: 7, eosIds: [], compact: false });
    // EOS = the second token of row 0: rows finish at various steps.
    const eosIds = [free[0].tokens[1], free[3].tokens[0]];
    const slow = await generate(model, many, { maxNewTokens: 10, sampling, seed: 7, eosIds, compact: false });
    const fast = await generate(model, many, { maxNewTokens: 10, sampling, seed: 7, eosIds, compact: true });
    console.log(`finish reasons: ${fast.map((g) => `${g.finishReason}@${g.tokens.length}`).join(" ")}`);
    expect(fast.filter((g) => g.finishReason === "eos").length).toBeGreaterThanOrEqual(3);
    expect(fast.map((g) => g.tokens)).toEqual(slow.map((g) => g.tokens));
    expect(fast.map((g) => g.finishReason)).toEqual(slow.map((g) => g.finishReason));
    for (let b = 0; b < many.length; b++) for (let i = 0; i < fast[b].tokens.length; i++) expect(fast[b].logprobs[i]).toBeCloseTo(slow[b].logprobs[i], 4);
  });

  it("prefilling duplicate prompts once does not change any sequence", async () => {
    const { model } = load("qwen2");
    const sampling = { temperature: 1, topK: 5, topP: 1, minP: 0 };
    const group = [[4, 5, 6], [4, 5, 6], [9], [4, 5, 6], [9], [1, 2]];
    const a = await generate(model, group, { maxNewTokens: 6, sampling, seed: 3, eosIds: [], dedupePrompts: true });
    const b = await generate(model, group, { maxNewTokens: 6, sampling, seed: 3, eosIds: [], dedupePrompts: false });
    expect(a.map((g) => g.tokens)).toEqual(b.map((g) => g.tokens));
    for (let r = 0; r < group.length; r++) for (let i = 0; i < 6; i++) expect(a[r].logprobs[i]).toBeCloseTo(b[r].logprobs[i], 4);
    // Rows sharing a prompt still sample independently.
    expect(new Set([a[0], a[1], a[3]].map((g) => g.tokens.join(","))).size).toBeGreaterThan(1);
  });

  it("rejects bad input with clear errors", async () => {
    const { model } = load("llama");
    const s = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    await expect(generate(model, [[]], { maxNewTokens: 2, sampling: s, seed: 0, eosIds: [] })).rejects.toThrow(/empty/);
    await expect(generate(model, [[1]], { maxNewTokens: 0, sampling: s, seed: 0, eosIds: [] })).rejects.toThrow(/maxNewTokens/);
    await expect(generate(model, [[1000]], { maxNewTokens: 1, sampling: s, seed: 0, eosIds: [] })).rejects.toThrow(/outside/);
    expect(() => model.forward(new Int32Array(3), 2, 2)).toThrow(/B\*T/);
  });
});
