import type { Command } from "commander";
import { writeDataset } from "../../tasks/dataset.js";
import { generateDataset } from "../../tasks/index.js";
import type { TaskName } from "../../tasks/types.js";
import { intArg, log, taskOption } from "../common.js";

export function register(program: Command): void {
  program
    .command("data")
    .description("generate a JSONL dataset of task instances (half unanswerable), deterministic from the seed")
    .addOption(taskOption())
    .option("--n <n>", "number of instances", intArg("--n", 1), 100)
    .option("--depth <d>", "derivation depth, or a range like 1-4", "1-3")
    .option("--distractors <n>", "irrelevant premises per instance (default: the depth)", intArg("--distractors"))
    .option("--seed <n>", "seed", intArg("--seed"), 1)
    .requiredOption("--out <file>", "output .jsonl file")
    .action(async (o: { task: TaskName; n: number; depth: string; distractors?: number; seed: number; out: string }) => {
      const m = /^(\d+)(?:-(\d+))?$/.exec(o.depth);
      if (!m) throw new Error(`--depth must be a number or a range like 1-4, got "${o.depth}"`);
      const depth: number | [number, number] = m[2] ? [Number(m[1]), Number(m[2])] : Number(m[1]);
      const items = generateDataset(o.task, { n: o.n, depth, seed: o.seed, distractors: o.distractors });
      await writeDataset(o.out, items);
      log(`wrote ${items.length} ${o.task} instances (${items.filter((i) => !i.answerable).length} unanswerable) to ${o.out}`);
    });
}
