// Peak RSS of loading a Qwen3-0.6B-shaped checkpoint onto the CPU backend, f32 or with the
// frozen base in bf16 (what `anvil train/sft --lora-r R` do first). Not a suite of `anvil bench`:
// it writes a 1.2 GB model.safetensors (random bf16 values) once, then loads it in a fresh
// process per mode so each peak (VmHWM) is its own:
//   node dist/bench/load-peak.js make /tmp/q06        # config.json + model.safetensors (BF16)
//   node dist/bench/load-peak.js load /tmp/q06 bf16   # or f32; prints bytes, peak RSS, seconds
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CpuBackend } from "../src/backend/cpu.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { configToJson } from "../src/model/config.js";
import type { FrozenDtype } from "../src/model/model.js";
import { saveSafetensors, type TensorToSave } from "../src/model/safetensors.js";
import { parameterShapes } from "../src/model/types.js";
import { peakRssBytes } from "./harness.js";
import { PAPER_MODELS } from "./memory.js";

const config = PAPER_MODELS["qwen3-0.6b"];

/** Writes a random Qwen3-0.6B-shaped model directory (bf16 weights, as Hugging Face ships it). */
export async function makeModel(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, TensorToSave>();
  let s = 1;
  for (const [name, shape] of parameterShapes(config)) {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = (s / 2 ** 32 - 0.5) * 0.05;
    }
    tensors.set(name, { data: a, shape });
  }
  await saveSafetensors(join(dir, "model.safetensors"), tensors, { dtype: "BF16" });
  writeFileSync(join(dir, "config.json"), JSON.stringify(configToJson(config)));
}

/** Loads it with the frozen matrices in `frozenDtype`; parameter bytes, peak RSS, seconds. */
export async function loadPeak(dir: string, frozenDtype: FrozenDtype): Promise<{ parameterBytes: number; peakRssBytes: number; seconds: number }> {
  const t0 = performance.now();
  const { model } = await loadCheckpoint(dir, new CpuBackend({ threads: 1 }), { frozenDtype });
  return { parameterBytes: model.parameterBytes, peakRssBytes: peakRssBytes(), seconds: (performance.now() - t0) / 1000 };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [cmd, dir, mode] = process.argv.slice(2);
  const GiB = 2 ** 30;
  if (cmd === "make" && dir) await makeModel(dir);
  else if (cmd === "load" && dir && (mode === "f32" || mode === "bf16")) {
    const r = await loadPeak(dir, mode);
    console.log(`frozen ${mode}: parameters ${(r.parameterBytes / GiB).toFixed(2)} GiB, peak RSS ${(r.peakRssBytes / GiB).toFixed(2)} GiB, ${r.seconds.toFixed(1)} s`);
  } else {
    console.error("usage: node dist/bench/load-peak.js make DIR | load DIR f32|bf16");
    process.exit(2);
  }
}
