import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writeReport } from "../../report/report.js";
import { readJsonFileSync } from "../../util/json-file.js";
import { log } from "../common.js";

export function register(program: Command): void {
  program
    .command("report")
    .description("(re)write RUN/report.html with SVG curves from RUN/metrics.jsonl")
    .argument("<run>", "run directory")
    .action((run: string) => {
      if (!existsSync(join(run, "metrics.jsonl"))) throw new Error(`${run} has no metrics.jsonl: is it a run directory?`);
      const cfgPath = join(run, "config.json");
      const cfg = existsSync(cfgPath) ? readJsonFileSync(cfgPath) : {};
      log(`wrote ${writeReport(run, `anvil run ${run}`, cfg)}`);
    });
}
