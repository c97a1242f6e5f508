// Group filters (DAPO-style dynamic sampling): groups without reward variance carry no
// GRPO gradient, so drop them and refill from fresh prompts.
import type { FilterKind } from "./options.js";
import { groupHasZeroStd } from "./advantages.js";

/** Whether a group of rewards (and pass flags) is kept under the filter. */
export function keepGroup(kind: FilterKind, rewards: number[], passed: boolean[]): boolean {
  switch (kind) {
    case "none":
      return true;
    case "zero-std":
      return !groupHasZeroStd(rewards);
    case "balanced": {
      const rate = passed.filter((p) => p).length / passed.length;
      return rate > 0 && rate < 1;
    }
  }
}
