// Arithmetic sheets: GraphLA's trace computations on their own, mixed into its SFT batches.
//
// A tiny model made here starts without arithmetic, and GraphLA's weak starts got most answerable
// items wrong by miscomputing a step ("3*16 - 1 = 48"). Learning the computations first, as a
// drill before the task, cost the trace's look-ups; mixing 4 sheets into each SFT step of 16 items
// taught both (57% -> 22% of written steps miscomputed, answerable 20% -> 50% at 1,250 steps, one
// seed: results/number-facts/). A sheet lists expressions exactly as traces write them and its
// completion copies each with its value, so the drill is the traces' own distribution of numbers
// and operations. Off by default (--sft-sheets): through the RL table Anchor computed better but
// beat GRPO by no more, and the SFT ceiling fell behind at depths 3-4 (results/arith-sheets/).
import { graphlaProblem, traceLA, type TraceStep } from "./graphla.js";
import { mixSeed } from "./rng.js";
import type { Instance } from "./types.js";

/** Computations per sheet: about a GraphLA trace's length in tokens, so padding a batch costs little. */
export const SHEET_STEPS = 16;

const SALT = 0x5ee7;

/** The steps GraphLA's traces compute, from items of depths 1-4 (both labels) drawn from `seed`. */
function traceSteps(seed: number, n: number): TraceStep[] {
  const steps: TraceStep[] = [];
  for (let k = 0; steps.length < n; k++) {
    const p = graphlaProblem({ depth: 1 + (k % 4), seed: mixSeed(seed, k, SALT), answerable: k % 2 === 0 });
    steps.push(...traceLA(p.premises, p.target).steps);
  }
  return steps.slice(0, n);
}

/** A sheet of `n` computations, a pure function of `seed`: an Instance whose trace is the worked sheet. */
export function arithmeticSheet(seed: number, n = SHEET_STEPS): Instance {
  const steps = traceSteps(seed, n);
  return {
    id: `sheet-${seed}`,
    task: "sheet",
    prompt: `Compute each:\n${steps.map((s) => `- ${s.expr}`).join("\n")}`,
    answer: "done",
    trace: steps.map((s) => `${s.expr} = ${s.value}`).join("\n"),
    depth: 1,
    distractors: 0,
    answerable: true,
    seed,
  };
}
