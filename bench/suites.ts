// Every benchmark suite, by the name `anvil bench <suite>` takes. The CLI loads this module
// at run time from the package (src/cli/commands/bench.ts), so the library never imports bench/.
import type { BenchSuite } from "../src/bench/report.js";
import { runAttentionBench } from "./attention.js";
import { runBackendsBench } from "./backends.js";
import { runKernelsBench } from "./kernels.js";
import { runMatmulBench } from "./matmul.js";
import { runMemoryBench, type MemoryBenchOptions } from "./memory.js";
import { runModelBenchSuite } from "./model.js";
import { runPreferenceBenchSuite } from "./preference.js";
import { runServeBench } from "./serve.js";

export const SUITES: BenchSuite[] = [
  { suite: "kernels", title: "fused kernels", run: (ctx) => runKernelsBench(ctx, { only: ctx.args.only as string | undefined }) },
  // --only picks fused-kernel cases; the matmul and attention tables then stay out
  { suite: "kernels", title: "matmul", run: (ctx) => (ctx.args.only ? Promise.resolve() : runMatmulBench(ctx)) },
  { suite: "kernels", title: "attention", run: (ctx) => (ctx.args.only ? Promise.resolve() : runAttentionBench(ctx)) },
  { suite: "backends", title: "every kernel on every backend", run: (ctx) => runBackendsBench(ctx) },
  { suite: "model", title: "decoder end to end", run: (ctx) => runModelBenchSuite(ctx) },
  { suite: "preference", title: "one DPO step: pair tokens per second", run: (ctx) => runPreferenceBenchSuite(ctx) },
  { suite: "memory", title: "one RL step of paper-sized models", run: (ctx) => runMemoryBench(ctx, ctx.args as MemoryBenchOptions) },
  { suite: "serve", title: "anvil serve vs in-process generation", run: (ctx) => runServeBench(ctx) },
];
