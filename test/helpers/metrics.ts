// A run's metrics.jsonl as rows, with the timing fields left out (they differ between a run and
// its resumed copy; everything else must not).
import { readFileSync } from "node:fs";
import { join } from "node:path";

const TIMING = /^(time_s|sample_s)$/;

export const metricRows = (run: string): Record<string, number>[] =>
  readFileSync(join(run, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, number>).filter(([k]) => !TIMING.test(k))));
