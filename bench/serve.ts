// `anvil serve` throughput: requests/s and generated tokens/s at concurrency 1, 8 and 64 on the
// tiny model and a ~25M one, through loopback HTTP (the server in this process, clients as concurrent
// fetch loops), against the in-process generator decoding the same number of prompts per
// batch. The gap is what HTTP, JSON and the batching window cost; at concurrency 1 the server
// decodes one row at a time, at 64 it batches like the generator does.
//
//   node dist/bench/serve.js [--json] [--quick]
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../src/backend/cpu.js";
import { initModel, type PresetShape } from "../src/model/init.js";
import { Policy } from "../src/rl/policy.js";
import { ServeEngine } from "../src/serve/engine.js";
import { createServeServer } from "../src/serve/server.js";
import { generateDataset, taskCorpus } from "../src/tasks/index.js";
import type { BenchContext, BenchRow } from "../src/bench/report.js";

const MAX_TOKENS = 32;

/** The models measured: the tiny preset, and a ~25M decoder (bench/model.ts's 8 x 512 shape). */
const MODELS: { label: string; shape: Partial<PresetShape> }[] = [
  { label: "tiny", shape: {} },
  { label: "~25M", shape: { hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 4, headDim: 64, intermediateSize: 1536 } },
];

export async function runServeBench(ctx: BenchContext): Promise<void> {
  // --quick: the tiny model only.
  for (const m of ctx.quick ? MODELS.slice(0, 1) : MODELS) await serveBench(ctx, m.label, m.shape);
}

async function serveBench(ctx: BenchContext, label: string, shape: Partial<PresetShape>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "anvil-bench-serve-"));
  const be = new CpuBackend({ threads: 1 });
  try {
    const { numParams } = await initModel({ preset: "tiny", shape, corpus: taskCorpus("graphli", 200), out: dir, seed: 1 });
    const model = `${label} model, ${(numParams / 1e6).toFixed(1)}M params`;
    const prompts = generateDataset("graphli", { n: 64, depth: [1, 2], seed: 7 }).map((x) => x.prompt);
    const local = await Policy.load(dir, be);
    const engine = new ServeEngine(await Policy.load(dir, be), 64);
    const server = createServeServer(engine, { name: "tiny", root: dir });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/completions`;
    const sampling = { temperature: 1, topK: 0, topP: 1, minP: 0 };

    for (const c of [1, 8, 64]) {
      ctx.progress(`${label}: serve at concurrency ${c}`);
      const total = ctx.quick ? Math.max(4, c) : Math.max(16, 2 * c);
      // Served: c clients, each sending its next request when the last one is answered.
      let next = 0;
      let tokens = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: c }, async () => {
          for (let i = next++; i < total; i = next++) {
            const body = JSON.stringify({ model: "tiny", prompt: prompts[i % prompts.length], max_tokens: MAX_TOKENS, seed: i });
            const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
            tokens += ((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
          }
        }),
      );
      const served = (performance.now() - t0) / 1000;
      ctx.row(row(`serve ${label} c=${c} (${total} requests)`, "anvil serve (HTTP)", served, total, tokens, model));

      // In process: the same prompts, c per generate() call.
      tokens = 0;
      const t1 = performance.now();
      for (let s = 0; s < total; s += c) {
        const batch = Array.from({ length: Math.min(c, total - s) }, (_, j) => prompts[(s + j) % prompts.length]);
        const gens = await local.generate(batch, { maxNewTokens: MAX_TOKENS, sampling, seed: s });
        tokens += gens.reduce((a, g) => a + g.tokens.length, 0);
      }
      ctx.row(row(`serve ${label} c=${c} (${total} requests)`, "in-process generate", (performance.now() - t1) / 1000, total, tokens, model));
    }
    server.closeAllConnections();
    server.close();
  } finally {
    be.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

function row(name: string, impl: string, seconds: number, requests: number, tokens: number, model: string): BenchRow {
  return { name, impl, seconds: seconds / requests, note: `${(requests / seconds).toFixed(1)} req/s, ${(tokens / seconds).toFixed(0)} tok/s (${model}, 1 thread, max_tokens ${MAX_TOKENS})` };
}

