// The GRPO loss of one token and its derivative in the log-prob, shared by grpo_loss.wgsl and
// linear_grpo_loss.wgsl (included with `//!include grpo_token`; the WGSL mirror of
// native/cpu/grpo_token.h, semantics in anvil/grpo_loss.h).
//   lp, old: log-probs (old = lp without an old policy); d_ref = lp - lp_ref (unused without
//   ref); d_tis = old - lp_rollout (unused without a TIS cap); A: the sequence's advantage.
// The includer declares the uniform `p` (with B, T, aggregation, maxLen) and the `mask` (B*T).
fn seq_mass(b: u32) -> f32 {
  var s = 0.0;
  for (var t = 0u; t < p.T; t++) { s += mask[b * p.T + t]; }
  return s;
}

// The mask mass and non-empty sequence count of sequences lid, lid + 256, ... (one invocation's
// share of a 256-wide workgroup's pass over the batch).
fn mass_share(lid: u32) -> vec2f {
  var mass = 0.0;
  var nonempty = 0.0;
  for (var b = lid; b < p.B; b += 256u) {
    let s = seq_mass(b);
    mass += s;
    if (s > 0.0) { nonempty += 1.0; }
  }
  return vec2f(mass, nonempty);
}

// The aggregation denominator of sequence b, from the batch's mask mass and non-empty sequences.
fn grpo_denominator(b: u32, total: f32, nseq: f32) -> f32 {
  switch (p.aggregation) {
    case 0u: { return total; }
    case 1u: { return seq_mass(b) * nseq; }
    case 2u: { return nseq; }
    default: { return f32(p.B) * f32(p.maxLen); }
  }
}

struct GrpoToken { tok_pg: f32, kl: f32, dlogprob: f32, r: f32, low: bool, high: bool, dual: bool }

fn grpo_token(A: f32, lp: f32, old: f32, has_ref: bool, d_ref: f32, d_tis: f32, epsLow: f32, epsHigh: f32, c: f32, beta: f32,
              kl_kind: u32, tisCap: f32) -> GrpoToken {
  var g: GrpoToken;
  let lo = 1.0 - epsLow;
  let hi = 1.0 + epsHigh;
  g.r = exp(lp - old);
  g.low = A < 0.0 && g.r < lo;
  g.high = A > 0.0 && g.r > hi;
  g.dual = c > 1.0 && A < 0.0 && g.r > c;
  var pg: f32;
  var dpg: f32;
  if (g.low || g.high) {
    pg = clamp(g.r, lo, hi) * A;
    dpg = 0.0;
  } else if (g.dual) {
    pg = c * A;
    dpg = 0.0;
  } else {
    pg = g.r * A;
    dpg = g.r * A;
  }
  var w = 1.0;
  if (tisCap > 0.0) { w = min(exp(d_tis), tisCap); }
  g.tok_pg = -w * pg;
  g.kl = 0.0;
  var dkl = 0.0;
  if (has_ref) {
    let d = d_ref;
    switch (kl_kind) {
      case 0u: { g.kl = d; dkl = 1.0; }
      case 1u: { g.kl = 0.5 * d * d; dkl = d; }
      default: { let e = exp(-d); g.kl = e + d - 1.0; dkl = 1.0 - e; }
    }
  }
  g.dlogprob = -w * dpg + beta * dkl;
  return g;
}
