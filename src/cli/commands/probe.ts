import type { Command } from "commander";
import { probeAccuracy, type ProbeLabel, type ProbeResult } from "../../tasks/probe.js";
import type { TaskName } from "../../tasks/types.js";
import { intArg, log, printJson, taskOption } from "../common.js";

/** DESIGN.md "Tasks": a hypothesis-only probe must stay at or under this held-out accuracy. */
const BOUND = 0.6;

export function register(program: Command): void {
  program
    .command("probe")
    .description(
      "hypothesis-only shortcut probe: held-out accuracy of logistic regression on the premises' surface features " +
        `(role-replaced n-grams, entity counts) predicting answerability and, for graphli, true/false; should be <= ${BOUND}`,
    )
    .addOption(taskOption())
    .option("--depth <d>", "depth, or a range like 1-6 (one row per depth)", "1-6")
    .option("--n-train <n>", "training items per depth", intArg("--n-train", 10), 1500)
    .option("--n-test <n>", "held-out items per depth", intArg("--n-test", 10), 600)
    .option("--distractors <n>", "irrelevant premises per instance (default: the depth)", intArg("--distractors"))
    .option("--seed <n>", "seed", intArg("--seed"), 1)
    .option("--json", "print one JSON object")
    .action((o: { task: TaskName; depth: string; nTrain: number; nTest: number; distractors?: number; seed: number; json?: boolean }) => {
      const m = /^(\d+)(?:-(\d+))?$/.exec(o.depth);
      if (!m) throw new Error(`--depth must be a number or a range like 1-6, got "${o.depth}"`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (lo < 1 || hi < lo) throw new Error(`--depth range must satisfy 1 <= min <= max, got "${o.depth}"`);
      const labels: ProbeLabel[] = o.task === "graphli" ? ["answerable", "answer"] : ["answerable"];
      const t0 = performance.now();
      const rows: { depth: number; answerable: ProbeResult; answer: ProbeResult | null }[] = [];
      for (let depth = lo; depth <= hi; depth++) {
        const res = labels.map((label) =>
          probeAccuracy({ task: o.task, depth, label, nTrain: o.nTrain, nTest: o.nTest, seed: o.seed, distractors: o.distractors }),
        );
        rows.push({ depth, answerable: res[0]!, answer: res[1] ?? null });
        log(`depth ${depth}: ${res.map((r) => `${r.label} ${r.accuracy.toFixed(3)}`).join(", ")}`);
      }
      const seconds = (performance.now() - t0) / 1000;
      const pass = rows.every((r) => r.answerable.accuracy <= BOUND && (r.answer === null || r.answer.accuracy <= BOUND));
      if (o.json) {
        printJson({ task: o.task, nTrain: o.nTrain, nTest: o.nTest, seed: o.seed, distractors: o.distractors ?? null, bound: BOUND, pass, seconds, rows });
        return;
      }
      const pct = (r: ProbeResult | null) => (r === null ? "-" : `${r.accuracy.toFixed(3)}${r.accuracy > BOUND ? " !" : ""} (train ${r.trainAccuracy.toFixed(2)})`);
      const out = [
        `hypothesis-only probe, ${o.task}: held-out accuracy (n ${o.nTrain} train / ${o.nTest} held out per cell; chance 0.5, bound ${BOUND})`,
        `${"depth".padEnd(6)} ${"answerable".padEnd(24)} ${o.task === "graphli" ? "answer (true/false)" : ""}`.trimEnd(),
        ...rows.map((r) => `${String(r.depth).padEnd(6)} ${pct(r.answerable).padEnd(24)} ${r.answer === null ? "" : pct(r.answer)}`.trimEnd()),
      ];
      const worst = rows.flatMap((r) => [r.answerable, ...(r.answer ? [r.answer] : [])]).filter((r) => r.accuracy > BOUND);
      for (const r of worst.slice(0, 3))
        out.push(`  depth ${r.depth} ${r.label}: top features ${r.topFeatures.slice(0, 4).map((f) => `${f.feature} (${f.weight.toFixed(1)})`).join(", ")}`);
      out.push(pass ? `no shortcut found: every cell <= ${BOUND}` : `SHORTCUT: ${worst.length} cell(s) above ${BOUND} (marked !)`);
      process.stdout.write(out.join("\n") + "\n");
      log(`${seconds.toFixed(1)} s`);
    });
}
