// LoRA from the command line (needs `npm run build:ts`): sft --lora-r writes a PEFT adapter,
// score/generate/eval take --adapter, merge writes a full model scoring like base + adapter.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { initModel } from "../src/model/init.js";
import { taskCorpus } from "../src/tasks/index.js";

const cli = join(resolve(__dirname, ".."), "dist", "src", "cli", "main.js");
let work: string;
let model: string;

const anvil = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
const CPU = ["--backend", "cpu", "--threads", "1"];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "anvil-lora-cli-"));
  model = join(work, "model");
  await initModel({ preset: "tiny", corpus: taskCorpus("graphli", 200), out: model, seed: 2 });
});

describe("LoRA on the command line", () => {
  it("sft --lora-r -> score --adapter -> merge -> score of the merged model", () => {
    expect(existsSync(cli), "run `npm run build:ts` first").toBe(true);
    const adapter = join(work, "adapter");
    const sft = anvil("sft", "--model", model, "--steps", "3", "--batch", "2", "--lora-r", "2", "--lora-targets", "q,v,down", "--lr", "0.05", "--out", adapter, ...CPU);
    expect(sft.status, sft.stderr).toBe(0);
    expect(sft.stderr).toMatch(/LoRA r=2 alpha=4 on q,v,down/);
    expect(JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8"))).toMatchObject({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj", "down_proj"] });
    expect(existsSync(join(adapter, "tokenizer.json"))).toBe(true);

    const ids = ["--ids", "5,9,12,40,7,3"];
    const score = (...a: string[]) => {
      const r = anvil("score", ...a, ...ids, "--json", ...CPU);
      expect(r.status, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { tokens: { logprob: number | null }[] }).tokens.slice(1).map((t) => t.logprob!);
    };
    const base = score("--model", model);
    const withAdapter = score("--model", model, "--adapter", adapter);
    expect(Math.max(...withAdapter.map((x, i) => Math.abs(x - base[i])))).toBeGreaterThan(1e-4);

    const merged = join(work, "merged");
    const m = anvil("merge", "--model", model, "--adapter", adapter, "--out", merged, ...CPU);
    expect(m.status, m.stderr).toBe(0);
    expect(existsSync(join(merged, "model.safetensors"))).toBe(true);
    const fromMerged = score("--model", merged);
    expect(Math.max(...fromMerged.map((x, i) => Math.abs(x - withAdapter[i])))).toBeLessThan(1e-4);

    const gen = anvil("generate", "--model", model, "--adapter", adapter, "--prompt", "hi", "--max-new-tokens", "4", "--greedy", "--json", ...CPU);
    expect(gen.status, gen.stderr).toBe(0);
  });

  it("explains an adapter given as --model, and a missing adapter", () => {
    const adapter = join(work, "adapter");
    const asModel = anvil("score", "--model", adapter, "--ids", "1,2", ...CPU);
    expect(asModel.status).toBe(1);
    expect(asModel.stderr).toMatch(/LoRA adapter.*--adapter/);
    const missing = anvil("score", "--model", model, "--adapter", join(work, "nope"), "--ids", "1,2", ...CPU);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no adapter_config.json/);
  });
});
