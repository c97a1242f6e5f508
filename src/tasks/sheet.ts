// Drill sheets mixed into GraphLA's SFT batches: its trace computations on their own
// (arithmetic sheets), or its partner look-ups on their own (link sheets).
//
// A tiny model made here starts without arithmetic, and GraphLA's weak starts got most answerable
// items wrong by miscomputing a step ("3*16 - 1 = 48"). Learning the computations first, as a
// drill before the task, cost the trace's look-ups; mixing 4 sheets into each SFT step of 16 items
// taught both (57% -> 22% of written steps miscomputed, answerable 20% -> 50% at 1,250 steps, one
// seed: results/number-facts/). A sheet lists expressions exactly as traces write them and its
// completion copies each with its value, so the drill is the traces' own distribution of numbers
// and operations. Off by default (--sft-sheets): through the RL table Anchor computed better but
// beat GRPO by no more, and the SFT ceiling fell behind at depths 3-4 (results/arith-sheets/).
//
// Link sheets: at depths 2-4 the models made here still get most items with a two-unknown system
// wrong ("A and B together cost 19" solved "with [7] A costs 9 more than B"): the premise they
// name after "with" seldom relates the pair (results/sft-ceiling/lookups/). A link sheet is a
// GraphLA item's premise list and, for every premise relating two dishes, the pair; its
// completion quotes each pair's premise as the trace does, a two-key look-up drilled on the
// task's own premise lists. Off by default (--sft-link-sheets): the ceiling run with them was
// ahead at 2,000 steps and level at 4,000, and the look-up stayed mostly unlearned
// (results/sft-ceiling/links/).
import { dishesOf, graphlaProblem, premiseLinesLA, traceLA, type TraceStep } from "./graphla.js";
import { bulleted } from "./prompt.js";
import { mixSeed, TaskRng } from "./rng.js";
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
    prompt: `Compute each:\n${bulleted(steps.map((s) => s.expr))}`,
    answer: "done",
    trace: steps.map((s) => `${s.expr} = ${s.value}`).join("\n"),
    depth: 1,
    distractors: 0,
    answerable: true,
    seed,
  };
}

const LINK_SALT = 0x11c5;

/**
 * A link sheet, a pure function of `seed`: a GraphLA item's premises (depths 1-4, either label)
 * and, in a random order, each pair of dishes that one two-dish premise relates (named either way
 * round; a pair two such premises relate is left out); the completion quotes each pair's premise.
 */
export function linkSheet(seed: number): Instance {
  const rng = new TaskRng(mixSeed(seed, LINK_SALT));
  for (let k = 0; ; k++) {
    const p = graphlaProblem({ depth: 1 + rng.int(0, 3), seed: mixSeed(seed, k, LINK_SALT) });
    const lines = premiseLinesLA(p.premises);
    const key = (ds: string[]) => [...ds].sort().join(" ");
    const two = p.premises.flatMap((r, i) => (r.kind === "affine" || r.kind === "half" ? [{ ds: dishesOf(r), quote: lines[i]! }] : []));
    const count = new Map<string, number>();
    for (const t of two) count.set(key(t.ds), (count.get(key(t.ds)) ?? 0) + 1);
    const asked = rng.shuffle(two.filter((t) => count.get(key(t.ds)) === 1)).map((t) => ({ pair: (rng.chance(0.5) ? t.ds : [...t.ds].reverse()).join(" and "), quote: t.quote }));
    if (asked.length === 0) continue;
    return {
      id: `links-${seed}`,
      task: "sheet",
      prompt: `Quote the premise that relates each pair.\nPremises:\n${bulleted(lines)}\nPairs:\n${bulleted(asked.map((a) => a.pair))}`,
      answer: "done",
      trace: asked.map((a) => `${a.pair}, with ${a.quote}`).join("\n"),
      depth: 1,
      distractors: 0,
      answerable: true,
      seed,
    };
  }
}
