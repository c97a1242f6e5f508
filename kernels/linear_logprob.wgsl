// Fused linear log-prob + entropy: hidden (N, H), weight (V, H), targets (N) i32
//   -> logprob (N), entropy (N), lse (N) of softmax(hidden @ weight^T / temperature),
// without an (N, V) buffer. The host walks the vocabulary in chunks of Vc columns: a matmul
// (matmul.wgsl) writes z = hidden @ weight[v0 .. v0 + Vc]^T / T into a (N, Vc) scratch, then
// `ll_update` folds the chunk into a per-row online state (m, s, t, z_target) as in
// logprob_from_logits.wgsl, and `ll_finalize` turns the state into the outputs.
//
// Backward, per chunk: recompute z, overwrite it with dz (ll_dz), then
//   dhidden (+)= dz @ weight_chunk and dweight_chunk += dz^T @ hidden (matmul.wgsl), where
//   dz_j = (dlogprob * (onehot_j - p_j) - dentropy * p_j * (log p_j + H)) / T.
// targets < 0: logprob 0, entropy 0, and no gradient; targets >= V: NaN logprob (the CPU throws).

struct Params { N: u32, Vc: u32, v0: u32, first: u32, invT: f32, V: u32 }
@group(0) @binding(0) var<uniform> p: Params;

// NaN for invalid targets; a function, since a const-expression may not evaluate to NaN.
fn nan_f32() -> f32 {
  let bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

const WG = 64u;  // ll_update: one narrow workgroup per row (fewer coroutine switches on lavapipe)
//!include online_softmax

// state (N, 4): m, s, t, z_target
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;
@compute @workgroup_size(WG)
fn ll_update(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.N) { return; }
  let lid = lid3.x;
  let base = row * p.Vc;
  var st = SOFT_EMPTY;
  for (var v = lid; v < p.Vc; v += WG) { st = soft_push(st, z[base + v]); }
  var c = soft_reduce(lid, st);
  if (lid == 0u) {
    var zt = 0.0;
    if (p.first == 0u) {
      c = soft_merge(Soft(state[row * 4u], state[row * 4u + 1u], state[row * 4u + 2u]), c);
      zt = state[row * 4u + 3u];
    }
    let tg = targets[row];
    if (tg >= i32(p.v0) && tg < i32(p.v0 + p.Vc)) { zt = z[base + u32(tg - i32(p.v0))]; }
    state[row * 4u] = c.m;
    state[row * 4u + 1u] = c.s;
    state[row * 4u + 2u] = c.t;
    state[row * 4u + 3u] = zt;
  }
}

@group(0) @binding(1) var<storage, read_write> logprob: array<f32>;
@group(0) @binding(2) var<storage, read_write> entropy: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> f_state: array<f32>;
@group(0) @binding(5) var<storage, read> f_targets: array<i32>;
@compute @workgroup_size(256)
fn ll_finalize(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (row >= p.N) { return; }
  let m = f_state[row * 4u];
  let ls = log(f_state[row * 4u + 1u]);
  lse[row] = m + ls;
  if (f_targets[row] < 0) {
    logprob[row] = 0.0;
    entropy[row] = 0.0;
  } else {
    logprob[row] = select(f_state[row * 4u + 3u] - (m + ls), nan_f32(), f_targets[row] >= i32(p.V));
    entropy[row] = ls - f_state[row * 4u + 2u] / f_state[row * 4u + 1u];
  }
}

// z (N, Vc) -> dz in place
@group(0) @binding(1) var<storage, read_write> dz: array<f32>;
@group(0) @binding(2) var<storage, read> b_targets: array<i32>;
@group(0) @binding(3) var<storage, read> b_lse: array<f32>;
@group(0) @binding(4) var<storage, read> b_entropy: array<f32>;
@group(0) @binding(5) var<storage, read> dlogprob: array<f32>;
@group(0) @binding(6) var<storage, read> dentropy: array<f32>;
@compute @workgroup_size(256)
fn ll_dz(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.N * p.Vc) { return; }
  let row = i / p.Vc;
  let col = i % p.Vc;
  let tg = b_targets[row];
  if (tg < 0) { dz[i] = 0.0; return; }
  let logp = dz[i] - b_lse[row];
  let pr = exp(logp);
  var g = -dlogprob[row] * pr - dentropy[row] * pr * (logp + b_entropy[row]);
  if (u32(tg) == p.v0 + col) { g += dlogprob[row]; }
  dz[i] = g * p.invT;
}
