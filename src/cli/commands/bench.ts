// `anvil bench`: runs the suites of bench/ (registered in bench/suites.ts), located at run time
// through the package root: dist/bench/suites.js when built, bench/suites.ts from the sources.
import { Argument, type Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { runBench, type BenchSuite } from "../../bench/report.js";
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
      "microbenchmarks (fused kernels against their unfused composition and PyTorch, every sgemm candidate, attention), backend comparison, model training/decoding tokens/s, and anvil serve against in-process generation; rows print as they are measured",
    )
    .addArgument(new Argument("[suite]", "what to run").choices(["kernels", "backends", "model", "serve", "all"]).default("kernels"))
    .option("--quick", "tiny sizes and short timing (a smoke run of about a minute)")
    .option("--full", "the large sizes (N=4096 tokens, V up to 151,936; tens of minutes)")
    .option("--json", "print one JSON object with every row at the end (rows and progress go to stderr meanwhile)")
    .action(async (suite: string, o: { quick?: boolean; full?: boolean; json?: boolean }) => {
      if (o.quick && o.full) throw new Error("anvil bench: --quick and --full exclude each other");
      const suites = (await loadSuites()).filter((s) => suite === "all" || s.suite === suite);
      await runBench(suites, { quick: o.quick, full: o.full, json: o.json });
    });
}
