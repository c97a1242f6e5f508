// Fused linear GRPO loss, the WebGPU pieces of backend.linearGrpoLoss (semantics:
// native/include/anvil/linear_grpo_loss.h). The host (src/backend/webgpu/index.ts) runs one
// pass per block of nb token rows, each finished before the next:
//   z (nb, V) = hidden_block @ weight^T / T                         matmul.wgsl
//   log-sum-exp, entropy, log-prob of each row                       linear_logprob.wgsl ll_update, ll_finalize
//   dlogprob, dentropy of each row                                   lgl_token (here)
//   z -> dz in place                                                 linear_logprob.wgsl ll_dz
//   dhidden_block = dz @ weight;  dweight += dz^T @ hidden_block    matmul.wgsl
// with each token's aggregation weight computed first from the mask (lgl_weights). The stats
// are grpo_loss.wgsl's, run on the log-probs and entropies at the end.
// B = sequences, T = padded completion length, N = B * T.

struct Params {
  B: u32, T: u32, r0: u32, nb: u32, epsLow: f32, epsHigh: f32, dualClip: f32, beta: f32, kl: u32, entropyCoef: f32,
  tisCap: f32, aggregation: u32, maxLen: u32, hasOld: u32, hasRef: u32, lossScale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;

// wt (N) = mask / the aggregation denominator of its sequence (0 where either is 0). One workgroup.
@group(0) @binding(1) var<storage, read_write> wt: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
//!include grpo_token
var<workgroup> red: array<f32, 512>;

@compute @workgroup_size(256)
fn lgl_weights(@builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let share = mass_share(lid);
  red[lid] = share.x;
  red[256u + lid] = share.y;
  workgroupBarrier();
  if (lid == 0u) {
    var a = 0.0;
    var n = 0.0;
    for (var k = 0u; k < 256u; k++) {
      a += red[k];
      n += red[256u + k];
    }
    red[0] = a;
    red[256] = n;
  }
  workgroupBarrier();
  let total = red[0];
  let nseq = red[256];
  for (var b = lid; b < p.B; b += 256u) {
    let denom = grpo_denominator(b, total, nseq);
    for (var t = 0u; t < p.T; t++) {
      let i = b * p.T + t;
      let m = mask[i];
      wt[i] = select(m / denom, 0.0, m == 0.0 || denom == 0.0);
    }
  }
}

// Rows r0 .. r0 + nb: dlogprob, dentropy (N) from logprob and the other per-token inputs.
// Absent optional inputs (hasOld, hasRef; rollout when tisCap = 0) are bound to logprob.
@group(0) @binding(1) var<storage, read_write> dlogprob: array<f32>;
@group(0) @binding(2) var<storage, read_write> dentropy: array<f32>;
@group(0) @binding(3) var<storage, read> t_wt: array<f32>;
@group(0) @binding(4) var<storage, read> logprob: array<f32>;
@group(0) @binding(5) var<storage, read> old_lp: array<f32>;
@group(0) @binding(6) var<storage, read> ref_lp: array<f32>;
@group(0) @binding(7) var<storage, read> rollout_lp: array<f32>;
@group(0) @binding(8) var<storage, read> advantages: array<f32>;

@compute @workgroup_size(256)
fn lgl_token(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (r >= p.nb) { return; }
  let i = p.r0 + r;
  let w = t_wt[i];
  if (w == 0.0) {
    dlogprob[i] = 0.0;
    dentropy[i] = 0.0;
    return;
  }
  let lp = logprob[i];
  let old = select(lp, old_lp[i], p.hasOld != 0u);
  let g = grpo_token(advantages[i / p.T], lp, old, p.hasRef != 0u, lp - ref_lp[i], old - rollout_lp[i], p.epsLow, p.epsHigh, p.dualClip,
                     p.beta, p.kl, p.tisCap);
  // rounded as grpo_loss's output, then scaled as a scale() of it would be
  dlogprob[i] = (w * g.dlogprob) * p.lossScale;
  dentropy[i] = (w * -p.entropyCoef) * p.lossScale;
}
