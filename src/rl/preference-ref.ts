// Reference log-probs of preference pairs: each pair's chosen and rejected completion scored
// once, before training, by the reference (the starting weights; under LoRA the base with the
// adapter disabled, the same weights). No second model stays in memory: the reference is a
// table of numbers. A run keeps it in RUN/ref_logps.json (written atomically), keyed by row
// index and stamped with a hash of the pairs and the reference model's directory, so a resumed
// run reuses it and a changed dataset or model is never matched with stale numbers.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Model } from "../model/model.js";
import { writeFileAtomicSync } from "../util/atomic.js";
import { readJsonFileSync } from "../util/json-file.js";
import { packPairs, type TokenPair } from "./preference-data.js";
import { scoreSequences } from "./step.js";

export const REF_LOGPS_FILE = "ref_logps.json";

/** Summed completion log-probs under the reference, by pair index. */
export interface ReferenceLogps {
  chosen: number[];
  rejected: number[];
}

/** What the numbers belong to: hashPairs() of the pairs, and the reference model's directory. */
export interface ReferenceKey {
  pairs: string;
  model: string;
}

interface RefLogpsFile extends ReferenceLogps, ReferenceKey {
  rows: number;
}

/** Scores every pair under `model` (adapter disabled when asked), `microBatch` sequences at a time. */
export async function computeReferenceLogps(model: Model, pairs: readonly TokenPair[], padId: number, microBatch: number, disableAdapter: boolean): Promise<ReferenceLogps> {
  const out: ReferenceLogps = { chosen: [], rejected: [] };
  const perPass = Math.max(1, Math.floor(microBatch / 2));
  for (let s = 0; s < pairs.length; s += perPass) {
    const chunk = pairs.slice(s, s + perPass);
    const sums = await scoreSequences(model, packPairs(chunk, padId), 2 * chunk.length, { disableAdapter });
    for (let i = 0; i < chunk.length; i++) {
      out.chosen.push(sums[i]);
      out.rejected.push(sums[chunk.length + i]);
    }
  }
  return out;
}

/** The cached reference log-probs of a run, or null when absent or made for other pairs. */
export function readReferenceLogps(runDir: string, key: ReferenceKey, rows: number): ReferenceLogps | null {
  const path = join(runDir, REF_LOGPS_FILE);
  if (!existsSync(path)) return null;
  const f = readJsonFileSync<RefLogpsFile>(path);
  if (f.pairs !== key.pairs || f.model !== key.model || f.rows !== rows || f.chosen?.length !== rows || f.rejected?.length !== rows) return null;
  return { chosen: f.chosen, rejected: f.rejected };
}

export function writeReferenceLogps(runDir: string, key: ReferenceKey, ref: ReferenceLogps): void {
  const f: RefLogpsFile = { ...key, rows: ref.chosen.length, chosen: ref.chosen, rejected: ref.rejected };
  writeFileAtomicSync(join(runDir, REF_LOGPS_FILE), JSON.stringify(f) + "\n");
}
