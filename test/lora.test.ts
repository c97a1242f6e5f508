// LoRA adapters: forward and adapter gradients against PyTorch (test/fixtures/make_model_fixtures.py,
// *_lora fixtures), gradient checkpointing under LoRA, a frozen base, the adapter disabled as the
// KL reference, PEFT save -> load round trip, adapters in PEFT's own config variants, merge, and
// KV-cache generation with an adapter.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CpuBackend } from "../src/backend/cpu.js";
import { saveCheckpoint } from "../src/model/checkpoint.js";
import { generate } from "../src/model/generate.js";
import { LoraAdapter, parseLoraTargets } from "../src/model/lora.js";
import { Model } from "../src/model/model.js";
import { AdamW } from "../src/model/optim.js";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter } from "../src/model/peft.js";
import { readSafetensors, saveSafetensors, type TensorToSave } from "../src/model/safetensors.js";
import { batchFromTargets } from "../src/rl/batch.js";
import { scoreTokens } from "../src/rl/step.js";
import { fixtureAdapterWeights, fixtureWeights, lmLoss, readModelFixture, type ModelFixture } from "./helpers/model-fixture.js";
import { testBackend } from "./helpers/naive-ops.js";

const here = dirname(fileURLToPath(import.meta.url));
const NAMES = ["qwen3_lora", "qwen2_lora"] as const;
const fixtures = new Map<string, ModelFixture>(NAMES.map((n) => [n, readModelFixture(join(here, "fixtures", `model_${n}.bin`))]));

let be: CpuBackend;
let tmp: string;
beforeAll(async () => {
  be = testBackend().backend;
  tmp = await mkdtemp(join(tmpdir(), "anvil-lora-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const read = (t: { size: number }) => be.readSync(t as never) as Float32Array;
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function compare(label: string, got: ArrayLike<number>, ref: ArrayLike<number>, rtol = 5e-4, atol = 1e-6): void {
  const d = maxAbsDiff(got, ref);
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  console.log(`${d <= atol + rtol * scale ? "OK " : "BAD"} ${label.padEnd(72)} max|diff| ${d.toExponential(2)}  max|ref| ${scale.toExponential(2)}`);
  expect(d, label).toBeLessThanOrEqual(atol + rtol * scale);
}

/** The fixture's base model with its adapter attached. */
function load(name: string) {
  const f = fixtures.get(name)!;
  const model = Model.fromWeights(be, f.config, fixtureWeights(f));
  model.attachAdapter(LoraAdapter.fromWeights(be, f.config, { ...f.lora!, targets: f.lora!.targets }, fixtureAdapterWeights(f)));
  return { f, model, ids: f.tensors.get("ids")!.data as Int32Array, targets: f.tensors.get("targets")!.data as Int32Array };
}
const scores = async (m: Model, ids: Int32Array, targets: Int32Array, B: number, T: number, disableAdapter = false) =>
  (await scoreTokens(m, batchFromTargets(ids, targets, B, T), 1, B, { disableAdapter })).logprob;

describe.each(NAMES)("%s against PyTorch", (name) => {
  it("forward, loss and every adapter gradient; the base gets none", async () => {
    const { f, model, ids, targets } = load(name);
    const acts = model.forward(ids, f.B, f.T);
    compare(`${name} hidden`, read(acts.hidden), f.tensors.get("hidden")!.data, 2e-4, 2e-5);
    expect(model.activationBytes(f.B, f.T)).toBe(acts.bytes);
    acts.dispose();
    for (const opts of [{ checkpointing: true }, { noGrad: true }, { disableAdapter: true }]) {
      const a = model.forward(ids, f.B, f.T, opts);
      expect(model.activationBytes(f.B, f.T, opts), JSON.stringify(opts)).toBe(a.bytes);
      a.dispose();
    }
    const { loss } = await lmLoss(model, ids, targets, f.B, f.T);
    compare(`${name} loss`, [loss], f.tensors.get("loss")!.data, 1e-5, 1e-5);
    const adapter = model.adapter!;
    expect(adapter.grads.size).toBe(adapter.params.size);
    for (const [pname] of adapter.params) compare(`${name} grad ${pname}`, read(adapter.grad(pname)), f.tensors.get(`grad/${pname}`)!.data);
    expect(model.grads.size).toBe(0);
  });

  it("gradient checkpointing: identical adapter gradients, lower peak activation memory", async () => {
    const { f, model, ids, targets } = load(name);
    await lmLoss(model, ids, targets, f.B, f.T);
    const plain = new Map([...model.adapter!.grads].map(([n, g]) => [n, read(g)]));
    const plainPeak = model.activationMemory.peak;
    model.zeroGrads();
    model.activationMemory.resetPeak();
    await lmLoss(model, ids, targets, f.B, f.T, { checkpointing: true });
    for (const [n, g] of model.adapter!.grads) expect(maxAbsDiff(read(g), plain.get(n)!), n).toBe(0);
    console.log(`${name} LoRA step peak activation bytes: full ${plainPeak}, checkpointed ${model.activationMemory.peak}`);
    expect(model.activationMemory.peak).toBeLessThan(plainPeak);
  });
});

describe("LoRA behaviour", () => {
  it("a fresh adapter (B = 0) leaves the model unchanged; A is kaiming-uniform like PEFT", async () => {
    const f = fixtures.get("qwen3_lora")!;
    const ids = f.tensors.get("ids")!.data as Int32Array;
    const targets = f.tensors.get("targets")!.data as Int32Array;
    const model = Model.fromWeights(be, f.config, fixtureWeights(f));
    const base = await scores(model, ids, targets, f.B, f.T);
    const a = LoraAdapter.create(be, f.config, { r: 4, alpha: 8, targets: parseLoraTargets("q_proj,down") }, 7);
    model.attachAdapter(a);
    expect(a.config.targets).toEqual(["q", "down"]);
    expect(maxAbsDiff(await scores(model, ids, targets, f.B, f.T), base)).toBe(0);
    const A = read(a.layers[0].down!.a); // (r, I): bound 1/sqrt(I)
    const bound = 1 / Math.sqrt(f.config.intermediateSize);
    expect(Math.max(...A.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...A.map(Math.abs))).toBeGreaterThan(0.8 * bound);
    expect(read(a.layers[0].down!.b).every((x) => x === 0)).toBe(true);
    expect(() => parseLoraTargets("q,lm_head")).toThrow(/lm_head/);
  });

  it("disableAdapter scores the base model exactly (the KL reference under LoRA)", async () => {
    const { f, model, ids, targets } = load("qwen2_lora");
    const withAdapter = await scores(model, ids, targets, f.B, f.T);
    const ref = await scores(model, ids, targets, f.B, f.T, true);
    const bare = Model.fromWeights(be, f.config, fixtureWeights(f));
    expect(maxAbsDiff(ref, await scores(bare, ids, targets, f.B, f.T))).toBe(0);
    expect(maxAbsDiff(ref, withAdapter)).toBeGreaterThan(1e-3);
  });

  it("training updates only the adapter; the base weights stay bit-identical", async () => {
    const { f, model, ids, targets } = load("qwen3_lora");
    const before = new Map([...model.params].map(([n, t]) => [n, read(t)]));
    const opt = new AdamW(model.trainable, { lr: 1e-2, schedule: "constant" });
    const losses: number[] = [];
    for (let s = 0; s < 5; s++) {
      model.zeroGrads();
      losses.push((await lmLoss(model, ids, targets, f.B, f.T)).loss);
      await opt.update();
    }
    console.log(`LoRA losses: ${losses.map((l) => l.toFixed(4)).join(" ")}`);
    expect(losses[4]).toBeLessThan(losses[0]);
    for (const [n, t] of model.params) expect(maxAbsDiff(read(t), before.get(n)!), n).toBe(0);
  });

  it("save -> load round trip in PEFT's layout gives the same adapter and the same scores", async () => {
    const { f, model, ids, targets } = load("qwen3_lora");
    const dir = join(tmp, "adapter");
    await saveCheckpoint(dir, model, { baseModel: "Qwen/Qwen3-0.6B" });
    const cfg = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, base_model_name_or_path: "Qwen/Qwen3-0.6B", bias: "none", use_rslora: false, use_dora: false });
    expect(cfg.target_modules).toEqual(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
    const file = await readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
    expect(file.get("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight")!.shape).toEqual([4, 24]); // (r, in)
    expect(file.get("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")!.shape).toEqual([16, 4]); // (out, r)
    expect(file.size).toBe(2 * 7 * f.config.numLayers);
    const again = Model.fromWeights(be, f.config, fixtureWeights(f));
    again.attachAdapter(await loadAdapter(dir, be, f.config));
    for (const [n, t] of model.adapter!.params) expect(maxAbsDiff(read(again.adapter!.params.get(n)!), read(t)), n).toBe(0);
    expect(maxAbsDiff(await scores(again, ids, targets, f.B, f.T), await scores(model, ids, targets, f.B, f.T))).toBe(0);
  });

  it("loads PEFT's config variants (adapter names in keys, regex targets, layers_to_transform, rsLoRA) and refuses what it cannot compute", async () => {
    const f = fixtures.get("qwen2_lora")!;
    const dir = join(tmp, "peft");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const r = 2;
    const pair = (l: number, path: string, out: number, inp: number): [string, TensorToSave][] => [
      [`base_model.model.model.layers.${l}.${path}.lora_A.default.weight`, { data: Float32Array.from({ length: r * inp }, (_, i) => Math.sin(i + l)), shape: [r, inp] }],
      [`base_model.model.model.layers.${l}.${path}.lora_B.default.weight`, { data: Float32Array.from({ length: out * r }, (_, i) => 0.1 * Math.cos(i - l)), shape: [out, r] }],
    ];
    const kv = f.config.numKvHeads * f.config.headDim;
    await saveSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), new Map([...pair(1, "self_attn.v_proj", kv, f.config.hiddenSize)]));
    const peftConfig = { peft_type: "LORA", task_type: "CAUSAL_LM", r, lora_alpha: 4, use_rslora: true, target_modules: ".*\\.v_proj", layers_to_transform: [1], bias: "none", rank_pattern: {}, alpha_pattern: {}, modules_to_save: null, use_dora: false, fan_in_fan_out: false };
    await writeFile(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(peftConfig));
    const a = await loadAdapter(dir, be, f.config);
    expect(a.config.targets).toEqual(["v"]);
    expect(a.config.layers).toEqual([1]);
    expect(a.scale).toBeCloseTo(4 / Math.sqrt(2), 12);
    expect(a.layers[0].v).toBeUndefined();
    expect(a.layers[1].v).toBeDefined();
    for (const [bad, why] of [[{ use_dora: true }, /DoRA/], [{ modules_to_save: ["lm_head"] }, /modules_to_save/], [{ peft_type: "IA3" }, /LORA/], [{ lora_bias: true }, /lora_bias/], [{ r: 3 }, /elements/]] as const) {
      await writeFile(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...peftConfig, ...bad }));
      await expect(loadAdapter(dir, be, f.config)).rejects.toThrow(why);
    }
  });

  it("merge: the merged model scores like base + adapter", async () => {
    const { f, model, ids, targets } = load("qwen2_lora");
    const withAdapter = await scores(model, ids, targets, f.B, f.T);
    model.mergeAdapter();
    expect(model.adapter).toBeNull();
    const merged = await scores(model, ids, targets, f.B, f.T);
    const d = maxAbsDiff(merged, withAdapter);
    console.log(`merged vs base + adapter: max|diff| of log-probs ${d.toExponential(2)}`);
    expect(d).toBeLessThan(2e-5);
  });

  it("generation with an adapter (KV cache) equals the argmax of full forwards with it", async () => {
    const { model } = load("qwen3_lora");
    const prompt = [1, 2, 3, 4];
    const [g] = await generate(model, [prompt], { maxNewTokens: 5, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 1, eosIds: [] });
    const seq = [...prompt, ...g.tokens];
    const acts = model.forward(Int32Array.from(seq.slice(0, -1)), 1, seq.length - 1);
    const logits = read(model.logits(acts.hidden));
    acts.dispose();
    const V = model.config.vocabSize;
    for (let i = 0; i < g.tokens.length; i++) {
      const row = logits.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V);
      expect(g.tokens[i]).toBe(row.indexOf(Math.max(...row)));
    }
  });
});
