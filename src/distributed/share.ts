// Which of a step's prompt groups a data-parallel rank owns: contiguous blocks, sizes differing
// by at most one. Whole groups only, so group-relative advantages are those of one process.
import { OptionsError } from "../rl/options.js";

/** Rank `rank`'s block [start, start + count) of `total` groups split over `world` ranks. */
export function shareOf(total: number, rank: number, world: number): { start: number; count: number } {
  if (total < world) throw new OptionsError(`promptsPerStep (${total}) must be >= the number of ranks (${world}): every rank needs at least one group: raise --prompts-per-step or use fewer ranks`);
  const start = Math.floor((rank * total) / world);
  return { start, count: Math.floor(((rank + 1) * total) / world) - start };
}
