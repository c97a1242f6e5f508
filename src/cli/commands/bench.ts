// `anvil bench`: runs the suites of bench/ (registered in bench/suites.ts), located at run time
// through the package root: dist/bench/suites.js when built, bench/suites.ts from the sources.
import { Argument, type Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { runBench, type BenchSuite } from "../../bench/report.js";
import { intArg } from "../common.js";
import { packageRoot, runningFromDist } from "../../util/package-root.js";

/** bench/suites.ts's SUITES, from the built tree or the sources (whichever this module runs from). */
export async function loadSuites(): Promise<BenchSuite[]> {
  const path = runningFromDist() ? join(packageRoot(), "dist", "bench", "suites.js") : join(packageRoot(), "bench", "suites.ts");
  if (!existsSync(path)) throw new Error(`anvil bench: ${path} is missing (the benchmarks ship with the source package; run \`npm run build:ts\`)`);
  return ((await import(pathToFileURL(path).href)) as { SUITES: BenchSuite[] }).SUITES;
}

export function register(program: Command): void {
  program
    .command("bench")
    .description(
      "microbenchmarks (fused kernels against their unfused composition and PyTorch, every sgemm candidate, attention), backend comparison, model training/decoding tokens/s, one DPO step's pair tokens/s against PyTorch, memory of paper-sized models, and anvil serve against in-process generation; rows print as they are measured",
    )
    .addArgument(
      new Argument("[suite]", "what to run (memory: one RL step of random Qwen3-0.6B / Qwen3-1.7B / Qwen2.5-3B-shaped models, full FT and LoRA r=16: peak RSS, s/step, decode tok/s; not part of all)")
        .choices(["kernels", "backends", "model", "preference", "memory", "serve", "all"])
        .default("kernels"),
    )
    .option("--quick", "tiny sizes and short timing (a smoke run of about a minute)")
    .option("--full", "the large sizes (N=4096 tokens, V up to 151,936; tens of minutes)")
    .option("--json", "print one JSON object with every row at the end (rows and progress go to stderr meanwhile)")
    .option("--only <text>", "kernels: only the fused-kernel cases whose name contains text (e.g. \"linear GRPO\"; skips the matmul and attention tables)")
    .option("--models <list>", "memory: which of qwen3-0.6b,qwen3-1.7b,qwen2.5-3b (default: all three)")
    .option("--modes <list>", "memory: lora,full (default: both)")
    .option("--shape <PxGxN[xL]>", "memory: prompts x group x new tokens [x prompt length] (default 8x5x256x64)")
    .option("--threads <n>", "memory: CPU threads (0 = all cores)", intArg("--threads"), 0)
    .option("--micro-batch <n>", "memory: sequences per forward/backward (default 16)", intArg("--micro-batch", 1))
    .option("--generation-batch <n>", "memory: rollouts decoded together (default 64)", intArg("--generation-batch", 1))
    .option("--frozen-dtype <list>", "memory: storage of the frozen base under LoRA, f32,bf16 (default bf16, the trainers' default)")
    .option("--gradient-checkpointing", "memory: recompute block activations in backward, as the trainers' flag (default: on under LoRA above 100M parameters; --no-gradient-checkpointing turns it off)")
    .option("--no-gradient-checkpointing", "memory: never recompute activations")
    .action(async (suite: string, o: { quick?: boolean; full?: boolean; json?: boolean; only?: string; models?: string; modes?: string; shape?: string; threads: number; microBatch?: number; generationBatch?: number; frozenDtype?: string; gradientCheckpointing?: boolean }) => {
      if (o.quick && o.full) throw new Error("anvil bench: --quick and --full exclude each other");
      const list = (s?: string) => s?.split(",").map((x) => x.trim()).filter(Boolean);
      for (const m of list(o.modes) ?? []) if (m !== "lora" && m !== "full") throw new Error(`--modes: "${m}" is not lora or full`);
      for (const d of list(o.frozenDtype) ?? []) if (d !== "f32" && d !== "bf16") throw new Error(`--frozen-dtype: "${d}" is not f32 or bf16`);
      const gradientCheckpointing = o.gradientCheckpointing ?? "auto";
      const args = { only: o.only, models: list(o.models), modes: list(o.modes), shape: o.shape, threads: o.threads, microBatch: o.microBatch, generationBatch: o.generationBatch, frozenDtypes: list(o.frozenDtype), gradientCheckpointing };
      // all: everything but memory (one RL step of each paper-sized model takes hours here).
      const suites = (await loadSuites()).filter((s) => (suite === "all" ? s.suite !== "memory" : s.suite === suite));
      await runBench(suites, { quick: o.quick, full: o.full, json: o.json, args });
    });
}
