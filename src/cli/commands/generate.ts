import type { Command } from "commander";
import { createBackend, type BackendChoice } from "../../backend/index.js";
import { Policy } from "../../rl/policy.js";
import { adapterOption, backendFlags, intArg, log, optionFlag, printJson } from "../common.js";

export function register(program: Command): void {
  backendFlags(
    program
      .command("generate")
      .description("complete a prompt (chat template applied) with the fused sampler, seeded and reproducible")
      .requiredOption("--model <dir>", "model directory")
      .addOption(adapterOption())
      .requiredOption("--prompt <s>", "user message")
      .option("--n <n>", "completions to draw", intArg("--n", 1), 1)
      .addOption(optionFlag("maxNewTokens", { withDefault: true }))
      .addOption(optionFlag("temperature", { help: "sampling temperature (0 = greedy)", withDefault: true }))
      .addOption(optionFlag("topK", { withDefault: true }))
      .addOption(optionFlag("topP", { withDefault: true }))
      .addOption(optionFlag("minP", { withDefault: true }))
      .option("--greedy", "argmax decoding")
      .addOption(optionFlag("seed", { help: "sampling seed", withDefault: true }))
      .option("--json", "print one JSON object"),
  ).action(async (o: { model: string; adapter?: string; prompt: string; n: number; maxNewTokens: number; temperature: number; topK: number; topP: number; minP: number; greedy?: boolean; seed: number; json?: boolean; backend: BackendChoice; threads: number }) => {
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    const t0 = performance.now();
    const gens = await policy.generate(Array(o.n).fill(o.prompt), {
      maxNewTokens: o.maxNewTokens,
      sampling: { temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP, greedy: o.greedy || o.temperature === 0 },
      seed: o.seed,
    });
    const seconds = (performance.now() - t0) / 1000;
    const tokens = gens.reduce((a, g) => a + g.tokens.length, 0);
    if (o.json) printJson({ model: o.model, prompt: o.prompt, completions: gens.map((g) => ({ text: g.text, tokens: g.tokens, finishReason: g.finishReason })), tokensPerSecond: tokens / seconds });
    else {
      gens.forEach((g, i) => process.stdout.write(`${o.n > 1 ? `--- ${i + 1} (${g.finishReason})\n` : ""}${g.text}\n`));
      log(`${tokens} tokens in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(0)} tokens/s)`);
    }
    policy.model.dispose();
    backend.destroy();
  });
}
