// report.html of `anvil experiment anchor-vs-grpo`: per task, curves of held-out answerable and
// unanswerable accuracy and abstain rate against the RL step (mean over seeds per method), the
// rollouts' own accuracy, and the results table with the weak starts.
import { join } from "node:path";
import type { ExperimentResults } from "../experiment/anchor-vs-grpo.js";
import { formatMargins, formatTable } from "../experiment/anchor-vs-grpo.js";
import { writeFileAtomic } from "../util/atomic.js";
import { readMetrics } from "./report.js";
import { lineChart, type Series } from "./svg.js";

const PANELS: [string, string][] = [
  ["held-out answerable accuracy", "eval_acc_answerable"],
  ["held-out unanswerable accuracy", "eval_acc_unanswerable"],
  ["held-out abstain rate", "eval_abstain_rate"],
  ["held-out accuracy", "eval_acc"],
  ["rollouts: answerable accuracy", "acc_answerable"],
  ["rollouts: unanswerable accuracy", "acc_unanswerable"],
  ["rollouts: abstain rate", "abstain_rate"],
  ["frac_reward_zero_std (own samples)", "frac_reward_zero_std"],
];

/** Mean over runs of metric `key` at each step where every run has it. */
function meanCurve(runs: Record<string, number>[][], key: string): [number, number][] {
  const bySteps = new Map<number, number[]>();
  for (const rows of runs)
    for (const r of rows) if (typeof r[key] === "number" && r.step !== undefined) bySteps.set(r.step, [...(bySteps.get(r.step) ?? []), r[key]]);
  return [...bySteps.entries()]
    .filter(([, v]) => v.length === runs.length)
    .sort((a, b) => a[0] - b[0])
    .map(([s, v]) => [s, v.reduce((a, b) => a + b, 0) / v.length]);
}

export async function writeExperimentReport(out: string, res: ExperimentResults): Promise<string> {
  const tasks = [...new Set(res.runs.map((r) => r.task))];
  const methods = [...new Set(res.runs.map((r) => r.method))];
  // Each run's metrics, read once: method -> one row list per seed.
  const metricsOf = (task: string, m: string) =>
    res.runs.filter((r) => r.task === task && r.method === m).map((r) => readMetrics(join(out, task, `${m}-seed${r.seed}`)).filter((x) => x.step !== undefined));
  const sections = tasks.map((task) => {
    const byMethod = new Map(methods.map((m) => [m, metricsOf(task, m)]));
    const charts = PANELS.map(([title, key]) => {
      const series: Series[] = methods.map((m) => ({ name: m, points: meanCurve(byMethod.get(m)!, key) }));
      return lineChart(`${task}: ${title}`, series);
    });
    const weak = res.weak
      .filter((w) => w.task === task)
      .map((w) => `<tr><td>${w.from ? `from ${w.from}` : `${w.sftSteps} SFT steps`}</td><td>answerable ${(100 * w.eval.ans).toFixed(1)}%</td><td>unanswerable ${(100 * w.eval.unans).toFixed(1)}%</td><td>${w.inWindow ? "in window" : "OUTSIDE the window"}</td></tr>`)
      .join("");
    return `<h3>${task}</h3><h4>weak start (shared by every seed and method)</h4><table>${weak}</table><div class="grid">${charts.join("\n")}</div>`;
  });
  const table = formatTable(res)
    .split("\n")
    .filter((l) => !/^\|---/.test(l))
    .map((l, i) => `<tr>${l.split("|").slice(1, -1).map((c) => (i === 0 ? `<th>${c.trim()}</th>` : `<td>${c.trim()}</td>`)).join("")}</tr>`)
    .join("");
  // Anchor's margin over each method, the figure the issue's target is stated in.
  const margins = res.margins.length ? `<h4>Anchor's margin in overall accuracy</h4><pre>${formatMargins(res)}</pre>` : "";
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>anvil experiment anchor-vs-grpo</title>
<style>body{font-family:sans-serif;margin:16px}.grid{display:flex;flex-wrap:wrap;gap:8px}td,th{padding:1px 8px;font-size:12px;text-align:left}pre{font-size:11px;background:#f6f6f6;padding:8px}</style>
</head><body><h2>Anchor vs GRPO (mean over seeds ${[...new Set(res.runs.map((r) => r.seed))].join(", ")})</h2>
<p>Held-out accuracy in %, mean ± sd over seeds; "before" is the weak SFT start. ${res.seconds.toFixed(0)} s in all.</p>
<table>${table}</table>${margins}${sections.join("\n")}
<h3>options</h3><pre>${JSON.stringify(res.options, null, 2).replace(/</g, "&lt;")}</pre></body></html>`;
  const path = join(out, "report.html");
  await writeFileAtomic(path, html);
  return path;
}
