// GraphLA solver: which dish prices do the premises determine, and how.
//
// Two solvers, on purpose:
// - `solveForward` is forward chaining: repeatedly take a linear premise with exactly one unknown
//   dish and solve it for that dish (in either direction, so inversions count). It records which
//   premise fixed each dish, which is what a ground-truth trace replays.
// - `solveExact` is Gaussian elimination over exact rationals on the whole linear system: a dish
//   is determined iff the premises entail its value. It catches anything forward chaining could
//   miss (joint systems), so an item labelled "unknown" is unknown for any linear reasoner.
// A genuine two-unknown system ("A and B together cost 17." + "A costs 3 more than B.") fixes A
// and B only jointly: forward chaining is stuck on it, elimination solves it.

// ---- exact rationals -------------------------------------------------------------------------

/** n / d with d > 0 and gcd(n, d) = 1. */
export interface Frac {
  n: bigint;
  d: bigint;
}

const gcd = (a: bigint, b: bigint): bigint => {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
};

export function frac(n: bigint | number, d: bigint | number = 1n): Frac {
  let nn = BigInt(n);
  let dd = BigInt(d);
  if (dd === 0n) throw new RangeError("fraction with zero denominator");
  if (dd < 0n) [nn, dd] = [-nn, -dd];
  const g = gcd(nn, dd) || 1n;
  return { n: nn / g, d: dd / g };
}
export const fadd = (a: Frac, b: Frac): Frac => frac(a.n * b.d + b.n * a.d, a.d * b.d);
export const fsub = (a: Frac, b: Frac): Frac => frac(a.n * b.d - b.n * a.d, a.d * b.d);
export const fmul = (a: Frac, b: Frac): Frac => frac(a.n * b.n, a.d * b.d);
export const fdiv = (a: Frac, b: Frac): Frac => frac(a.n * b.d, a.d * b.n);
export const fzero = (a: Frac): boolean => a.n === 0n;
export const feq = (a: Frac, b: Frac): boolean => a.n === b.n && a.d === b.d;
export const fstr = (a: Frac): string => (a.d === 1n ? `${a.n}` : `${a.n}/${a.d}`);

// ---- premises ----------------------------------------------------------------------------------

/** One premise. `x` is the dish the sentence is about. */
export type Relation =
  | { kind: "given"; x: string; value: number } // x = value
  | { kind: "affine"; x: string; y: string; a: number; b: number } // x = a*y + b
  | { kind: "half"; x: string; y: string } // x = y / 2
  | { kind: "sum"; x: string; y: string; z: string } // x = y + z
  | { kind: "diff"; x: string; y: string; z: string } // x + z = y, i.e. x = y - z
  | { kind: "total"; x: string; y: string; value: number }; // x + y = value

/** Σ coef·dish = rhs. */
export interface Equation {
  coefs: Map<string, Frac>;
  rhs: Frac;
}

export function toEquation(r: Relation): Equation {
  const eq = (terms: [string, number, number?][], rhs: number): Equation => {
    const coefs = new Map<string, Frac>();
    for (const [v, n, d] of terms) {
      const c = fadd(coefs.get(v) ?? frac(0), frac(n, d ?? 1));
      if (fzero(c)) coefs.delete(v);
      else coefs.set(v, c);
    }
    return { coefs, rhs: frac(rhs) };
  };
  switch (r.kind) {
    case "given":
      return eq([[r.x, 1]], r.value);
    case "affine":
      return eq([[r.x, 1], [r.y, -r.a]], r.b);
    case "half":
      return eq([[r.x, 2], [r.y, -1]], 0);
    case "sum":
      return eq([[r.x, 1], [r.y, -1], [r.z, -1]], 0);
    case "diff":
      return eq([[r.x, 1], [r.z, 1], [r.y, -1]], 0);
    case "total":
      return eq([[r.x, 1], [r.y, 1]], r.value);
  }
}

export function dishesOf(r: Relation): string[] {
  switch (r.kind) {
    case "given":
      return [r.x];
    case "affine":
    case "half":
    case "total":
      return [r.x, r.y];
    case "sum":
    case "diff":
      return [r.x, r.y, r.z];
  }
}

// ---- forward chaining --------------------------------------------------------------------------

export interface ForwardResult {
  values: Map<string, Frac>;
  /** For each determined dish, the index of the premise that fixed it. */
  via: Map<string, number>;
  /** Dishes in the order they were determined. */
  order: string[];
  /** False when a fully known premise is violated (never for generated items). */
  consistent: boolean;
}

export function solveForward(premises: readonly Relation[]): ForwardResult {
  const eqs = premises.map(toEquation);
  const values = new Map<string, Frac>();
  const via = new Map<string, number>();
  const order: string[] = [];
  let consistent = true;
  for (let changed = true; changed; ) {
    changed = false;
    eqs.forEach((eq, i) => {
      const unknown = [...eq.coefs.keys()].filter((v) => !values.has(v));
      if (unknown.length > 1) return;
      let rest = eq.rhs;
      for (const [v, c] of eq.coefs) if (values.has(v)) rest = fsub(rest, fmul(c, values.get(v)!));
      if (unknown.length === 0) {
        if (!fzero(rest)) consistent = false;
        return;
      }
      const x = unknown[0]!;
      values.set(x, fdiv(rest, eq.coefs.get(x)!));
      via.set(x, i);
      order.push(x);
      changed = true;
    });
  }
  return { values, via, order, consistent };
}

/** The premises (indices, in solving order) a forward derivation of `target` uses. */
export function derivationOf(premises: readonly Relation[], fw: ForwardResult, target: string): number[] {
  const need = new Set<string>();
  const visit = (d: string): void => {
    if (need.has(d) || !fw.via.has(d)) return;
    need.add(d);
    for (const other of dishesOf(premises[fw.via.get(d)!]!)) if (other !== d) visit(other);
  };
  visit(target);
  return fw.order.filter((d) => need.has(d)).map((d) => fw.via.get(d)!);
}

// ---- exact elimination -------------------------------------------------------------------------

export interface ExactResult {
  /** Every dish whose value the premises entail. */
  values: Map<string, Frac>;
  consistent: boolean;
}

/** Reduced row echelon form of the linear system; dish i is determined iff some row is e_i. */
export function solveExact(premises: readonly Relation[]): ExactResult {
  const eqs = premises.map(toEquation);
  const dishes = [...new Set(eqs.flatMap((e) => [...e.coefs.keys()]))];
  const col = new Map(dishes.map((d, i) => [d, i]));
  const nv = dishes.length;
  const rows: Frac[][] = eqs.map((e) => {
    const row = Array.from({ length: nv + 1 }, () => frac(0));
    for (const [v, c] of e.coefs) row[col.get(v)!] = c;
    row[nv] = e.rhs;
    return row;
  });
  let r = 0;
  for (let c = 0; c < nv && r < rows.length; c++) {
    const p = rows.findIndex((row, i) => i >= r && !fzero(row[c]!));
    if (p < 0) continue;
    [rows[r], rows[p]] = [rows[p]!, rows[r]!];
    const pivot = rows[r]![c]!;
    rows[r] = rows[r]!.map((x) => fdiv(x, pivot));
    for (let i = 0; i < rows.length; i++) {
      if (i === r || fzero(rows[i]![c]!)) continue;
      const f = rows[i]![c]!;
      rows[i] = rows[i]!.map((x, j) => fsub(x, fmul(f, rows[r]![j]!)));
    }
    r++;
  }
  const values = new Map<string, Frac>();
  let consistent = true;
  for (const row of rows) {
    const nz = row.slice(0, nv).flatMap((x, j) => (fzero(x) ? [] : [j]));
    if (nz.length === 0 && !fzero(row[nv]!)) consistent = false;
    if (nz.length === 1) values.set(dishes[nz[0]!]!, fdiv(row[nv]!, row[nz[0]!]!));
  }
  return { values, consistent };
}
