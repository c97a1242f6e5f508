// A run's JSONL logs (metrics.jsonl, samples.jsonl): appended a line per record, so a kill can
// tear the last line. Before a run (re)starts they are cut back to what its restart point
// explains, so a resumed run's logs read exactly like an uninterrupted run's: no second step-0
// eval row, no second "final" row, no rows from steps that will run again.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../util/atomic.js";

export const RUN_LOGS = ["metrics.jsonl", "samples.jsonl"] as const;

interface Row {
  step?: number;
  final?: number;
  sft_step?: number;
}

/**
 * The lines of a JSONL log with their parsed rows. A torn last line (a kill mid-append) is
 * dropped with a log line; a bad line elsewhere is damage we must not paper over: an error
 * naming the file and line.
 */
function readLog(path: string, log: (l: string) => void): { line: string; row: Row }[] {
  const lines = readFileSync(path, "utf8").split("\n");
  const out: { line: string; row: Row }[] = [];
  let last = lines.length - 1;
  while (last >= 0 && lines[last]!.trim() === "") last--;
  for (let i = 0; i <= last; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    try {
      out.push({ line, row: JSON.parse(line) as Row });
    } catch (e) {
      if (i === last) {
        log(`anvil: ${path}: dropped a torn last line (line ${i + 1}, ${line.length} bytes), left by an interrupted write`);
        continue;
      }
      throw new Error(`${path}: line ${i + 1} is not valid JSON (${(e as Error).message}); fix or remove that line, then resume again`);
    }
  }
  return out;
}

/**
 * Cuts the logs back for a run restarting after `step` completed steps (0 = from scratch):
 * keeps step rows with 0 < step' <= step, the step-0 eval row only when step > 0 (a fresh start
 * writes it again), never the "final" row (written again at the end), and SFT rows when
 * `keepSft` (the SFT model exists, so SFT will not run again).
 */
export function rewindLogs(runDir: string, step: number, keepSft: boolean, log: (l: string) => void): void {
  for (const f of RUN_LOGS) {
    const path = join(runDir, f);
    if (!existsSync(path)) continue;
    const keep = readLog(path, log).filter(({ row }) => {
      if (row.step === undefined) return row.sft_step === undefined || keepSft;
      if (row.final) return false;
      return step > 0 && row.step <= step;
    });
    writeFileAtomicSync(path, keep.map((k) => k.line + "\n").join(""));
  }
}
