// GraphLI solver: which propositions the premises settle, and how.
//
// A literal is an atom with a polarity: {atom: "fog", value: false} reads "not fog". Premises are
// facts ("fog is false") and rules "if L1 [and L2 ...] then H" over literals, i.e. the clause
// (¬L1 ∨ ¬L2 ∨ H). `solveLI` is unit propagation: a clause whose other literals are all false
// makes its last literal true — modus ponens (body true -> head true) and modus tollens (head
// false, the other body literals true -> the last body literal false), with either polarity. It
// records which premise settled each atom, for traces.
// With arbitrary polarities the clauses are not Horn, so propagation is incomplete; `entails`
// decides KB ⊨ (atom = v) exactly, by refutation (KB ∧ atom ≠ v is unsatisfiable) with a small
// DPLL. Labels come from `entails`.

export interface Literal {
  atom: string;
  /** true: the literal says the atom is true; false: "not atom". */
  value: boolean;
}

export type Premise =
  | { kind: "fact"; atom: string; value: boolean }
  | { kind: "rule"; body: Literal[]; head: Literal };

export interface LIResult {
  values: Map<string, boolean>;
  /** Index of the premise that settled each atom. */
  via: Map<string, number>;
  order: string[];
  consistent: boolean;
}

/** The premise as a clause: the literals one of which must hold. */
export function clauseOf(p: Premise): Literal[] {
  if (p.kind === "fact") return [{ atom: p.atom, value: p.value }];
  return [...p.body.map((l) => ({ atom: l.atom, value: !l.value })), p.head];
}

export function solveLI(premises: readonly Premise[]): LIResult {
  const values = new Map<string, boolean>();
  const via = new Map<string, number>();
  const order: string[] = [];
  let consistent = true;
  const clauses = premises.map(clauseOf);
  for (let changed = true; changed && consistent; ) {
    changed = false;
    clauses.forEach((c, i) => {
      if (!consistent) return;
      if (c.some((l) => values.get(l.atom) === l.value)) return; // satisfied
      const open = c.filter((l) => !values.has(l.atom));
      if (open.length === 0) consistent = false;
      else if (open.length === 1) {
        values.set(open[0]!.atom, open[0]!.value);
        via.set(open[0]!.atom, i);
        order.push(open[0]!.atom);
        changed = true;
      }
    });
  }
  return { values, via, order, consistent };
}

/** DPLL over clauses of literals: is there an assignment satisfying all of them? */
export function satisfiable(clauses: readonly Literal[][]): boolean {
  const assign = new Map<string, boolean>();
  const search = (): boolean => {
    const trail: string[] = [];
    const undo = (): false => {
      for (const a of trail) assign.delete(a);
      return false;
    };
    // Unit propagation to a fixpoint.
    for (let changed = true; changed; ) {
      changed = false;
      for (const c of clauses) {
        if (c.some((l) => assign.get(l.atom) === l.value)) continue;
        const open = c.filter((l) => !assign.has(l.atom));
        if (open.length === 0) return undo();
        if (open.length === 1) {
          assign.set(open[0]!.atom, open[0]!.value);
          trail.push(open[0]!.atom);
          changed = true;
        }
      }
    }
    let branch: string | undefined;
    for (const c of clauses) {
      if (c.some((l) => assign.get(l.atom) === l.value)) continue;
      branch = c.find((l) => !assign.has(l.atom))!.atom;
      break;
    }
    if (branch === undefined) return true;
    for (const v of [true, false]) {
      assign.set(branch, v);
      if (search()) return true;
      assign.delete(branch);
    }
    return undo();
  };
  return search();
}

/** true / false when the premises entail that value of `atom`, null when they settle neither. */
export function entails(premises: readonly Premise[], atom: string): boolean | null {
  const clauses = premises.map(clauseOf);
  if (!satisfiable(clauses)) throw new Error("inconsistent premises");
  if (!satisfiable([...clauses, [{ atom, value: false }]])) return true;
  if (!satisfiable([...clauses, [{ atom, value: true }]])) return false;
  return null;
}

/** Atoms a premise mentions, in sentence order. */
export function atomsOf(p: Premise): string[] {
  return p.kind === "fact" ? [p.atom] : [...p.body.map((l) => l.atom), p.head.atom];
}
