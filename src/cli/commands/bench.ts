import { Argument, type Command } from "commander";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { formatTable, type BenchRow } from "../../../bench/harness.js";
import { intArg, log, printJson } from "../common.js";

/** Suite -> [module under bench/, exported runner]. */
const SUITES: Record<string, [string, string][]> = {
  kernels: [
    ["kernels.js", "runKernelsBench"],
    ["matmul.js", "runMatmulBench"],
    ["attention.js", "runAttentionBench"],
  ],
  backends: [["backends.js", "runBackendsBench"]],
  model: [["model.js", "runModelBenchSuite"]],
  memory: [["memory.js", "runMemoryBench"]],
};
/** What `all` runs: memory is left out (one RL step of each paper-sized model takes hours here). */
const ALL = ["kernels", "backends", "model"];

const benchDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bench");

export function register(program: Command): void {
  program
    .command("bench")
    .description("microbenchmarks (fused kernels, matmul, attention; with PyTorch peers measured in the same run), backend comparison, and model training/decoding tokens/s")
    .addArgument(new Argument("[suite]", "what to run (memory: one RL step of random Qwen3-0.6B / Qwen3-1.7B / Qwen2.5-3B-shaped models, full FT and LoRA r=16: peak RSS, s/step, decode tok/s)").choices(["kernels", "backends", "model", "memory", "all"]).default("kernels"))
    .option("--quick", "smaller sizes and shorter timing (a smoke run)")
    .option("--models <list>", "memory: which of qwen3-0.6b,qwen3-1.7b,qwen2.5-3b (default: all three)")
    .option("--modes <list>", "memory: lora,full (default: both)")
    .option("--shape <PxGxN[xL]>", "memory: prompts x group x new tokens [x prompt length] (default 8x5x256x64)")
    .option("--threads <n>", "memory: CPU threads (0 = all cores)", intArg("--threads"), 0)
    .option("--micro-batch <n>", "memory: sequences per forward/backward (default 16)", intArg("--micro-batch", 1))
    .option("--generation-batch <n>", "memory: rollouts decoded together (default 64)", intArg("--generation-batch", 1))
    .option("--json", "print one JSON object with every row")
    .action(async (suite: string, o: { quick?: boolean; json?: boolean; models?: string; modes?: string; shape?: string; threads: number; microBatch?: number; generationBatch?: number }) => {
      const names = suite === "all" ? ALL : [suite];
      const list = (s?: string) => s?.split(",").map((x) => x.trim()).filter(Boolean);
      const runOpts = { quick: o.quick, models: list(o.models), modes: list(o.modes), shape: o.shape, threads: o.threads, microBatch: o.microBatch, generationBatch: o.generationBatch };
      for (const m of runOpts.modes ?? []) if (m !== "lora" && m !== "full") throw new Error(`--modes: "${m}" is not lora or full`);
      const sections: { suite: string; title: string; rows: BenchRow[] }[] = [];
      for (const name of names) {
        for (const [file, fn] of SUITES[name]) {
          const path = join(benchDir, file);
          if (!existsSync(path)) {
            log(`bench: ${file} is not built, skipping`);
            continue;
          }
          const mod = (await import(pathToFileURL(path).href)) as Record<string, (opts: typeof runOpts) => Promise<BenchRow[]>>;
          log(`bench: running ${name}/${file.replace(/\.js$/, "")} ...`);
          const rows = await mod[fn](runOpts);
          sections.push({ suite: name, title: file.replace(/\.js$/, ""), rows });
          if (!o.json) process.stdout.write(`\n${name}: ${file.replace(/\.js$/, "")}\n${formatTable(rows)}\n`);
        }
      }
      if (o.json) printJson({ sections });
    });
}
