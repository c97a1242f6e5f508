import { Argument, type Command } from "commander";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { formatTable, type BenchRow } from "../../../bench/harness.js";
import { log, printJson } from "../common.js";

/** Suite -> [module under bench/, exported runner]. */
const SUITES: Record<string, [string, string][]> = {
  kernels: [
    ["kernels.js", "runKernelsBench"],
    ["matmul.js", "runMatmulBench"],
    ["attention.js", "runAttentionBench"],
  ],
  backends: [["backends.js", "runBackendsBench"]],
  model: [["model.js", "runModelBenchSuite"]],
  serve: [["serve.js", "runServeBench"]],
};

const benchDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bench");

export function register(program: Command): void {
  program
    .command("bench")
    .description("microbenchmarks (fused kernels, matmul, attention; with PyTorch peers measured in the same run), backend comparison, and model training/decoding tokens/s")
    .addArgument(new Argument("[suite]", "what to run").choices(["kernels", "backends", "model", "serve", "all"]).default("kernels"))
    .option("--quick", "smaller sizes and shorter timing (a smoke run)")
    .option("--json", "print one JSON object with every row")
    .action(async (suite: string, o: { quick?: boolean; json?: boolean }) => {
      const names = suite === "all" ? Object.keys(SUITES) : [suite];
      const sections: { suite: string; title: string; rows: BenchRow[] }[] = [];
      for (const name of names) {
        for (const [file, fn] of SUITES[name]) {
          const path = join(benchDir, file);
          if (!existsSync(path)) {
            log(`bench: ${file} is not built, skipping`);
            continue;
          }
          const mod = (await import(pathToFileURL(path).href)) as Record<string, (opts: { quick?: boolean }) => Promise<BenchRow[]>>;
          log(`bench: running ${name}/${file.replace(/\.js$/, "")} ...`);
          const rows = await mod[fn]({ quick: o.quick });
          sections.push({ suite: name, title: file.replace(/\.js$/, ""), rows });
          if (!o.json) process.stdout.write(`\n${name}: ${file.replace(/\.js$/, "")}\n${formatTable(rows)}\n`);
        }
      }
      if (o.json) printJson({ sections });
    });
}
