// Anchor: inject ground-truth trajectories into GRPO groups.
//
// Early in RL from a weak policy almost every rollout fails; with binary or honesty rewards a
// group of failures has zero variance (no gradient) or only negative signal, and training can
// collapse towards degenerate outputs. Anchor replaces `count` of a group's G rollouts by the
// task's ground-truth completion (trace + answer). It is scored by the same verifier and
// enters the group statistics and the loss like any rollout: its advantage is positive
// exactly when the policy's own samples are worse, so it pulls the policy towards a correct
// trajectory instead of only pushing it away from wrong ones. Its old log-prob is the
// policy's log-prob when the batch is made, so the PPO ratio starts at 1.
import type { AnchorAnneal, AnchorMode } from "./options.js";

export interface AnchorConfig {
  mode: AnchorMode;
  count: number;
  anneal: AnchorAnneal;
  /** Annealing horizon in steps. */
  annealSteps: number;
}

/** Probability of anchoring a qualifying group at `step` (0-based) under the schedule. */
export function anchorProbability(cfg: AnchorConfig, step: number): number {
  if (cfg.mode === "off") return 0;
  if (cfg.anneal === "none" || cfg.annealSteps <= 0) return 1;
  const x = Math.min(1, step / cfg.annealSteps);
  return cfg.anneal === "linear" ? 1 - x : 0.5 * (1 + Math.cos(Math.PI * x));
}

/**
 * How many rollouts of a group to replace. `passed[i]` says whether rollout i was correct
 * (from the verifier). `u` is a uniform draw in [0, 1) from the run's seeded RNG.
 */
export function anchorsForGroup(cfg: AnchorConfig, passed: boolean[], step: number, u: number): number {
  if (cfg.mode === "off") return 0;
  if (cfg.mode === "all-fail" && passed.some((p) => p)) return 0;
  if (u >= anchorProbability(cfg, step)) return 0;
  return Math.min(cfg.count, passed.length - 1);
}
