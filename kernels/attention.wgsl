// Causal grouped-query attention, scale 1/sqrt(hd); query head h reads kv head h / (nh / nkv).
// q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd), lse (B, nh, T)
// HD (head dim) is a define, so the per-invocation rows live in registers / private memory.
//
// Forward: one invocation per query row (b, h, t) with an online softmax over keys 0..t.
// Backward (all outputs overwritten, race-free without atomics):
//   attention_delta: D = rowsum(dout * out) per (b, h, t)
//   attention_dq:    one invocation per query row: dq = scale * sum_j p_ij (dp_ij - D_i) k_j
//   attention_dkdv:  one invocation per key row (b, g, j), looping over the query heads of its
//                    group and queries i >= j: dv = sum p_ij dout_i, dk = scale * sum ds_ij q_i
// with p_ij = exp(s_ij - lse_i) and dp_ij = dout_i . v_j. Invocations of a workgroup share
// (b, head) and take consecutive rows, so they read the same k/v rows together.

// qoff / koff / loff: element offsets of this batch chunk inside the bound windows of the
// (q, out, dq, dout) / (k, v, dk, dv) / lse tensors (the host splits big batches over several
// dispatches and binds 256-byte-aligned windows; delta is per chunk, at offset 0).
struct Dims { B: u32, T: u32, nh: u32, nkv: u32, scale: f32, qoff: u32, koff: u32, loff: u32 }
@group(0) @binding(0) var<uniform> p: Dims;

const NEG_BIG = -3.0e38;

fn index(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * 64u + lid.x; }

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.B * p.nh * p.T) { return; }
  let t = g % p.T;
  let bh = g / p.T;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let kvh = h / (p.nh / p.nkv);
  let qo = p.qoff + ((b * p.T + t) * p.nh + h) * HD;
  var qv: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { qv[d] = q[qo + d] * p.scale; acc[d] = 0.0; }
  var m = NEG_BIG;
  var l = 0.0;
  for (var j = 0u; j <= t; j++) {
    let ko = p.koff + ((b * p.T + j) * p.nkv + kvh) * HD;
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += qv[d] * k[ko + d]; }
    if (s > m) {
      let c = exp(m - s);
      l *= c;
      for (var d = 0u; d < HD; d++) { acc[d] *= c; }
      m = s;
    }
    let e = exp(s - m);
    l += e;
    for (var d = 0u; d < HD; d++) { acc[d] += e * v[ko + d]; }
  }
  let inv = 1.0 / l;
  for (var d = 0u; d < HD; d++) { out[qo + d] = acc[d] * inv; }
  lse[p.loff + bh * p.T + t] = m + log(l);
}

// D (B, nh, T) = rowsum(dout * out)
@group(0) @binding(1) var<storage, read_write> delta: array<f32>;
@group(0) @binding(2) var<storage, read> d_dout: array<f32>;
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@compute @workgroup_size(64)
fn attention_delta(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.B * p.nh * p.T) { return; }
  let t = g % p.T;
  let bh = g / p.T;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let o = p.qoff + ((b * p.T + t) * p.nh + h) * HD;
  var s = 0.0;
  for (var d = 0u; d < HD; d++) { s += d_dout[o + d] * d_out[o + d]; }
  delta[g] = s;
}

@group(0) @binding(1) var<storage, read_write> dq: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_q: array<f32>;
@group(0) @binding(4) var<storage, read> b_k: array<f32>;
@group(0) @binding(5) var<storage, read> b_v: array<f32>;
@group(0) @binding(6) var<storage, read> b_lse: array<f32>;
@group(0) @binding(7) var<storage, read> b_delta: array<f32>;
@compute @workgroup_size(64)
fn attention_dq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.B * p.nh * p.T) { return; }
  let t = g % p.T;
  let bh = g / p.T;
  let h = bh % p.nh;
  let b = bh / p.nh;
  let kvh = h / (p.nh / p.nkv);
  let qo = p.qoff + ((b * p.T + t) * p.nh + h) * HD;
  var qv: array<f32, HD>;
  var go: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { qv[d] = b_q[qo + d] * p.scale; go[d] = b_dout[qo + d]; acc[d] = 0.0; }
  let lse_i = b_lse[p.loff + g];
  let delta_i = b_delta[g];
  for (var j = 0u; j <= t; j++) {
    let ko = p.koff + ((b * p.T + j) * p.nkv + kvh) * HD;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < HD; d++) { s += qv[d] * b_k[ko + d]; dp += go[d] * b_v[ko + d]; }
    let ds = exp(s - lse_i) * (dp - delta_i);
    for (var d = 0u; d < HD; d++) { acc[d] += ds * b_k[ko + d]; }
  }
  for (var d = 0u; d < HD; d++) { dq[qo + d] = acc[d] * p.scale; }
}

@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;
@group(0) @binding(3) var<storage, read> c_dout: array<f32>;
@group(0) @binding(4) var<storage, read> c_q: array<f32>;
@group(0) @binding(5) var<storage, read> c_k: array<f32>;
@group(0) @binding(6) var<storage, read> c_v: array<f32>;
@group(0) @binding(7) var<storage, read> c_lse: array<f32>;
@group(0) @binding(8) var<storage, read> c_delta: array<f32>;
@compute @workgroup_size(64)
fn attention_dkdv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.B * p.nkv * p.T) { return; }
  let j = g % p.T;
  let bk = g / p.T;
  let kvh = bk % p.nkv;
  let b = bk / p.nkv;
  let rep = p.nh / p.nkv;
  let ko = p.koff + ((b * p.T + j) * p.nkv + kvh) * HD;
  var kv: array<f32, HD>;
  var vv: array<f32, HD>;
  var dka: array<f32, HD>;
  var dva: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { kv[d] = c_k[ko + d] * p.scale; vv[d] = c_v[ko + d]; dka[d] = 0.0; dva[d] = 0.0; }
  for (var h = kvh * rep; h < (kvh + 1u) * rep; h++) {
    let bh = b * p.nh + h;
    for (var i = j; i < p.T; i++) {
      let qo = p.qoff + ((b * p.T + i) * p.nh + h) * HD;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < HD; d++) { s += kv[d] * c_q[qo + d]; dp += c_dout[qo + d] * vv[d]; }
      let pr = exp(s - c_lse[p.loff + bh * p.T + i]);
      let ds = pr * (dp - c_delta[bh * p.T + i]);
      for (var d = 0u; d < HD; d++) { dva[d] += pr * c_dout[qo + d]; dka[d] += ds * c_q[qo + d]; }
    }
  }
  for (var d = 0u; d < HD; d++) { dk[ko + d] = dka[d] * p.scale; dv[ko + d] = dva[d]; }
}
