// GraphLI solver: which propositions the premises settle, and how.
//
// Premises are facts (a literal) and rules "if b1 [and b2 ...] then h" — Horn clauses
// (¬b1 ∨ ¬b2 ∨ h). Unit propagation over them is modus ponens forward (all of the body true ->
// head true) and modus tollens backward (head false, all but one body atom true -> that atom
// false); `solveLI` records which premise settled each atom, for traces.
// Unit propagation alone can miss entailed negatives (x->a, x->b, a∧b->c, ¬c entails ¬x), so
// `entails` decides by refutation: KB ⊨ x iff KB ∧ ¬x propagates to a conflict, which is
// complete for Horn clauses. Labels come from `entails`; traces from `solveLI`.

export type Premise =
  | { kind: "fact"; atom: string; value: boolean }
  | { kind: "rule"; body: string[]; head: string };

export interface LIResult {
  values: Map<string, boolean>;
  /** Index of the premise that settled each atom. */
  via: Map<string, number>;
  order: string[];
  consistent: boolean;
}

export function solveLI(premises: readonly Premise[]): LIResult {
  const values = new Map<string, boolean>();
  const via = new Map<string, number>();
  const order: string[] = [];
  let consistent = true;
  const set = (atom: string, value: boolean, i: number): boolean => {
    const old = values.get(atom);
    if (old === undefined) {
      values.set(atom, value);
      via.set(atom, i);
      order.push(atom);
      return true;
    }
    if (old !== value) consistent = false;
    return false;
  };
  for (let changed = true; changed && consistent; ) {
    changed = false;
    premises.forEach((p, i) => {
      if (p.kind === "fact") {
        changed = set(p.atom, p.value, i) || changed;
        return;
      }
      const body = p.body.map((b) => values.get(b));
      if (body.some((v) => v === false)) return; // rule already satisfied
      const unknown = p.body.filter((b, j) => body[j] === undefined);
      if (unknown.length === 0) changed = set(p.head, true, i) || changed;
      else if (unknown.length === 1 && values.get(p.head) === false) changed = set(unknown[0]!, false, i) || changed;
    });
  }
  return { values, via, order, consistent };
}

/** true / false when the premises entail that value of `atom`, null when they settle neither. */
export function entails(premises: readonly Premise[], atom: string): boolean | null {
  if (!solveLI(premises).consistent) throw new Error("inconsistent premises");
  const refutes = (value: boolean): boolean =>
    !solveLI([...premises, { kind: "fact", atom, value }]).consistent;
  if (refutes(false)) return true;
  if (refutes(true)) return false;
  return null;
}

/** Atoms a premise mentions. */
export function atomsOf(p: Premise): string[] {
  return p.kind === "fact" ? [p.atom] : [...p.body, p.head];
}

/** The premises (indices, in solving order) a propagation derivation of `target` uses. */
export function derivationOfLI(premises: readonly Premise[], res: LIResult, target: string): number[] {
  const need = new Set<string>();
  const visit = (a: string): void => {
    if (need.has(a) || !res.via.has(a)) return;
    need.add(a);
    for (const other of atomsOf(premises[res.via.get(a)!]!)) if (other !== a) visit(other);
  };
  visit(target);
  return res.order.filter((a) => need.has(a)).map((a) => res.via.get(a)!);
}
