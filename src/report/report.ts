// report.html: the run's curves as SVG, regenerated during training.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../util/atomic.js";
import { lineChart, type Series } from "./svg.js";

/** Charts: title -> metric keys drawn together. */
export const PANELS: [string, string[]][] = [
  ["reward", ["reward_mean", "reward_std"]],
  ["accuracy (rollouts)", ["acc", "acc_answerable", "acc_unanswerable"]],
  ["held-out eval", ["eval_acc", "eval_acc_answerable", "eval_acc_unanswerable"]],
  ["abstain / format", ["abstain_rate", "format_rate"]],
  ["groups", ["frac_reward_zero_std", "anchor_frac"]],
  ["loss", ["loss"]],
  ["KL and entropy", ["kl", "entropy"]],
  ["clip fractions", ["clip_low", "clip_high", "clip_dual"]],
  ["completion length", ["completion_len_mean", "completion_len_max"]],
  ["grad norm / lr", ["grad_norm"]],
  ["throughput (tokens/s)", ["tokens_per_s"]],
  ["time per step (s)", ["time_rollout_s", "time_scoring_s", "time_update_s"]],
  ["sft loss", ["sft_loss"]],
  ["preference rewards (dpo)", ["rewards/chosen", "rewards/rejected", "rewards/margins"]],
  ["preference accuracy (dpo)", ["rewards/accuracies"]],
  ["log-probs (dpo)", ["logps/chosen", "logps/rejected"]],
];

export function readMetrics(runDir: string): Record<string, number>[] {
  const p = join(runDir, "metrics.jsonl");
  if (!existsSync(p)) return [];
  const lines = readFileSync(p, "utf8").split("\n");
  while (lines.length && lines[lines.length - 1]!.trim() === "") lines.pop();
  const rows: Record<string, number>[] = [];
  lines.forEach((l, i) => {
    if (l.trim() === "") return;
    try {
      rows.push(JSON.parse(l) as Record<string, number>);
    } catch (e) {
      // The last line may be mid-append (a live run) or torn (a killed one; resume repairs it).
      if (i < lines.length - 1) throw new Error(`${p}: line ${i + 1} is not valid JSON (${(e as Error).message})`);
    }
  });
  return rows;
}

export function renderReport(title: string, rows: Record<string, number>[], config: unknown): string {
  const xKey = (r: Record<string, number>) => r.step ?? r.sft_step ?? 0;
  const charts = PANELS.map(([name, keys]) => {
    const series: Series[] = keys
      .map((k) => ({ name: k, points: rows.filter((r) => typeof r[k] === "number").map((r) => [xKey(r), r[k]] as [number, number]) }))
      .filter((s) => s.points.length);
    return series.length ? lineChart(name, series) : "";
  }).filter(Boolean);
  const last = [...rows].reverse().find((r) => r.step !== undefined);
  const summary = last
    ? Object.entries(last)
        .map(([k, v]) => `<tr><td>${k}</td><td>${typeof v === "number" ? +v.toPrecision(5) : v}</td></tr>`)
        .join("")
    : "";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:sans-serif;margin:16px}.grid{display:flex;flex-wrap:wrap;gap:8px}td{padding:1px 8px;font-size:12px}pre{font-size:11px;background:#f6f6f6;padding:8px}</style>
</head><body><h2>${title}</h2><p>${rows.length} records; updated ${new Date().toISOString()}</p>
<div class="grid">${charts.join("\n")}</div>
<h3>last step</h3><table>${summary}</table>
<h3>options</h3><pre>${JSON.stringify(config, null, 2).replace(/</g, "&lt;")}</pre></body></html>`;
}

/** Rewrites runDir/report.html from metrics.jsonl (atomically). */
export function writeReport(runDir: string, title: string, config: unknown): string {
  const html = renderReport(title, readMetrics(runDir), config);
  const out = join(runDir, "report.html");
  writeFileAtomicSync(out, html);
  return out;
}
