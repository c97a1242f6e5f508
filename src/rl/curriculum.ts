// Curriculum over task depth (derivation length).
import type { CurriculumKind } from "./options.js";
import { uniform, PURPOSE } from "../util/seed.js";

export interface CurriculumState {
  /** Current maximum depth for the adaptive schedule. */
  level: number;
}

export class Curriculum {
  state: CurriculumState;
  constructor(
    readonly kind: CurriculumKind,
    readonly minDepth: number,
    readonly maxDepth: number,
    readonly totalSteps: number,
    state?: CurriculumState,
  ) {
    this.state = state ?? { level: minDepth };
  }

  /** Highest depth in use at this step. */
  ceiling(step: number): number {
    switch (this.kind) {
      case "fixed":
        return this.maxDepth;
      case "linear": {
        const frac = this.totalSteps <= 1 ? 1 : step / (this.totalSteps - 1);
        return Math.round(this.minDepth + frac * (this.maxDepth - this.minDepth));
      }
      case "adaptive":
        return this.state.level;
    }
  }

  /** Depth of prompt i at step (uniform over minDepth..ceiling). */
  depth(seed: number, step: number, i: number): number {
    const hi = this.ceiling(step);
    const span = hi - this.minDepth + 1;
    return this.minDepth + Math.floor(uniform(seed, step, i, PURPOSE.prompt, 77) * span);
  }

  /** Adaptive schedule: move the ceiling by the step's accuracy. */
  update(accuracy: number): void {
    if (this.kind !== "adaptive") return;
    if (accuracy > 0.7 && this.state.level < this.maxDepth) this.state.level++;
    else if (accuracy < 0.3 && this.state.level > this.minDepth) this.state.level--;
  }
}
