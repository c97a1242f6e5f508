import type { Command } from "commander";
import { createBackend, type BackendChoice } from "../../backend/index.js";
import { loadConfig } from "../../model/config.js";
import { Tokenizer } from "../../model/tokenizer.js";
import { Policy } from "../../rl/policy.js";
import { packBatch } from "../../rl/batch.js";
import { scoreTokens } from "../../rl/step.js";
import { adapterOption, backendFlags, log, numArg, printJson } from "../common.js";

export function register(program: Command): void {
  backendFlags(
    program
      .command("score")
      .description("per-token log-prob and entropy of a sequence under the model (token 0 has none)")
      .requiredOption("--model <dir>", "model directory")
      .addOption(adapterOption())
      .option("--text <s>", "text to score (tokenized as is, no chat template)")
      .option("--ids <list>", "comma-separated token ids to score")
      .option("--temperature <t>", "softmax temperature", numArg("--temperature", 1e-6), 1)
      .option("--json", "print one JSON object"),
  ).action(async (o: { model: string; adapter?: string; text?: string; ids?: string; temperature: number; json?: boolean; backend: BackendChoice; threads: number }) => {
    if ((o.text === undefined) === (o.ids === undefined)) throw new Error("give exactly one of --text or --ids");
    // Checked against the model's config and tokenizer before its weights are loaded.
    const config = await loadConfig(o.model);
    const V = config.vocabSize;
    const ids = o.ids !== undefined ? parseIds(o.ids, V) : (await Tokenizer.load(o.model)).encode(o.text!);
    if (ids.length < 2) throw new Error("need at least 2 tokens to score");
    if (ids.length > config.maxPositionEmbeddings)
      throw new Error(`${ids.length} tokens exceed the model's context length ${config.maxPositionEmbeddings}: score a shorter sequence`);
    const backend = await createBackend(o.backend, { threads: o.threads, warn: log });
    const policy = await Policy.load(o.model, backend, { adapter: o.adapter });
    // Row layout: the "prompt" is token 0, the scored "completion" is tokens 1..n-1.
    const batch = packBatch([{ promptIds: ids.slice(0, 1), completionIds: ids.slice(1) }], policy.padId);
    const { logprob, entropy } = await scoreTokens(policy.model, batch, o.temperature, 1);
    const tokens = ids.map((id, i) => ({
      id,
      token: policy.tokenizer.idToToken(id) ?? null,
      logprob: i === 0 ? null : logprob[i - 1],
      entropy: i === 0 ? null : entropy[i - 1],
    }));
    const total = tokens.reduce((a, t) => a + (t.logprob ?? 0), 0);
    if (o.json) printJson({ model: o.model, n: ids.length, totalLogprob: total, tokens });
    else {
      for (const t of tokens) process.stdout.write(`${String(t.id).padStart(6)}  ${JSON.stringify(t.token).padEnd(16)} ${t.logprob === null ? "" : t.logprob.toFixed(4).padStart(9)} ${t.entropy === null ? "" : t.entropy.toFixed(4).padStart(8)}\n`);
      process.stdout.write(`total log-prob ${total.toFixed(4)} over ${ids.length - 1} tokens\n`);
    }
    policy.model.dispose();
    backend.destroy();
  });
}

/** Comma-separated decimal token ids, strictly: Number() would read "0x10" as 16 and "1e1" as 10. */
export function parseIds(list: string, vocabSize: number): number[] {
  return list.split(",").map((raw, i) => {
    const s = raw.trim();
    const n = /^\d{1,15}$/.test(s) ? Number(s) : NaN;
    if (!(n < vocabSize)) throw new Error(`--ids: item ${i + 1} ("${raw}") is not a decimal token id in [0, ${vocabSize})`);
    return n;
  });
}
