// Deterministic randomness for task generation: every instance is a pure function of its seed.
// The stream is mulberry32 from the mixed seed, frozen: committed results name generated items.
import { Mulberry32 } from "../util/rng.js";
import { mixSeed } from "../util/seed.js";

export { mixSeed };

export class TaskRng extends Mulberry32 {
  constructor(seed: number) {
    super(mixSeed(seed));
  }
}
