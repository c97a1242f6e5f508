// GRPO-family policy loss, forward and backward in one kernel; semantics exactly as
// native/include/anvil/grpo_loss.h (PPO clip, dual clip, truncated IS weight, k1/k2/k3 KL,
// entropy bonus, four aggregations, stats in GRPO_STATS order). B = sequences, T = padded
// completion length, per-token inputs (B, T). Absent optional inputs are flagged (has*) and
// bound to some other buffer, never read.
// One workgroup of 256: pass 1 reduces the mask mass and the number of non-empty sequences;
// pass 2 gives each invocation whole sequences (their mass is the seq-mean denominator),
// writes the gradients and reduces the loss and stats. Sums in f32 (the CPU uses double).

struct Params {
  B: u32, T: u32, epsLow: f32, epsHigh: f32, dualClip: f32, beta: f32, kl: u32, entropyCoef: f32,
  tisCap: f32, aggregation: u32, maxLen: u32, hasRef: u32, hasRollout: u32, hasEntropy: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dlogprob: array<f32>;
@group(0) @binding(2) var<storage, read_write> dentropy: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read> logprob: array<f32>;
@group(0) @binding(5) var<storage, read> old_lp: array<f32>;
@group(0) @binding(6) var<storage, read> ref_lp: array<f32>;
@group(0) @binding(7) var<storage, read> rollout_lp: array<f32>;
@group(0) @binding(8) var<storage, read> entropy: array<f32>;
@group(0) @binding(9) var<storage, read> advantages: array<f32>;
@group(0) @binding(10) var<storage, read> mask: array<f32>;

//!include grpo_token

const NSTAT = 10u;  // loss, pg, kl, ent, low, high, dual, rsum, rmin, rmax
var<workgroup> red: array<f32, 2560>;

// Reduces red[s * 256 .. s * 256 + 256) into red[s * 256] for s < nstat, in two levels of 16
// (two barriers: lavapipe turns every barrier into a coroutine split, slow to compile and run).
// Rows 0..7 are sums, row 8 a min, row 9 a max.
fn reduce_block(lid: u32, nstat: u32) {
  workgroupBarrier();
  if (lid < 16u) {
    for (var s = 0u; s < nstat; s++) { red[s * 256u + lid * 16u] = combine16(s, lid * 16u, 1u); }
  }
  workgroupBarrier();
  if (lid == 0u) {
    for (var s = 0u; s < nstat; s++) { red[s * 256u] = combine16(s, 0u, 16u); }
  }
  workgroupBarrier();
}

// Combines red[s * 256 + first + k * stride] for k < 16.
fn combine16(s: u32, first: u32, stride: u32) -> f32 {
  var v = red[s * 256u + first];
  for (var k = 1u; k < 16u; k++) {
    let x = red[s * 256u + first + k * stride];
    if (s == 8u) { v = min(v, x); } else if (s == 9u) { v = max(v, x); } else { v += x; }
  }
  return v;
}


@compute @workgroup_size(256)
fn grpo_loss(@builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let share = mass_share(lid);
  red[lid] = share.x;
  red[256u + lid] = share.y;
  reduce_block(lid, 2u);
  let total = red[0];
  let nseq = red[256];
  workgroupBarrier();

  var acc: array<f32, NSTAT>;
  for (var i = 0u; i < 8u; i++) { acc[i] = 0.0; }
  acc[8] = 3.0e38;
  acc[9] = -3.0e38;
  for (var b = lid; b < p.B; b += 256u) {
    let denom = grpo_denominator(b, total, nseq);
    let A = advantages[b];
    for (var t = 0u; t < p.T; t++) {
      let i = b * p.T + t;
      let m = mask[i];
      if (m == 0.0 || denom == 0.0) {
        dlogprob[i] = 0.0;
        dentropy[i] = 0.0;
        continue;
      }
      let wt = m / denom;
      let lp = logprob[i];
      let g = grpo_token(A, lp, old_lp[i], p.hasRef != 0u, lp - ref_lp[i], old_lp[i] - rollout_lp[i], p.epsLow, p.epsHigh, p.dualClip, p.beta, p.kl, p.tisCap);
      let r = g.r;
      var h = 0.0;
      if (p.hasEntropy != 0u) { h = entropy[i]; }
      dlogprob[i] = wt * g.dlogprob;
      dentropy[i] = wt * -p.entropyCoef;
      acc[0] += wt * (g.tok_pg + p.beta * g.kl - p.entropyCoef * h);
      acc[1] += wt * g.tok_pg;
      acc[2] += m * g.kl;
      acc[3] += m * h;
      acc[4] += m * select(0.0, 1.0, g.low);
      acc[5] += m * select(0.0, 1.0, g.high);
      acc[6] += m * select(0.0, 1.0, g.dual);
      acc[7] += m * r;
      if (m > 0.0) {
        acc[8] = min(acc[8], r);
        acc[9] = max(acc[9], r);
      }
    }
  }
  for (var s = 0u; s < NSTAT; s++) { red[s * 256u + lid] = acc[s]; }
  reduce_block(lid, NSTAT);
  if (lid == 0u) {
    let has_tokens = total > 0.0;
    var inv = 0.0;
    if (has_tokens) { inv = 1.0 / total; }
    stats[0] = red[0];
    stats[1] = red[256];
    stats[2] = red[512] * inv;
    stats[3] = red[768] * inv;
    stats[4] = red[1024] * inv;
    stats[5] = red[1280] * inv;
    stats[6] = red[1536] * inv;
    stats[7] = select(0.0, red[2048], has_tokens);
    stats[8] = select(0.0, red[2304], has_tokens);
    stats[9] = red[1792] * inv;
    stats[10] = total;
  }
}
