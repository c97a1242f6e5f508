// logits (N, V), targets (N) i32 -> logprob (N), entropy (N) of softmax(logits / temperature).
// One 64-wide workgroup per row, one pass: each invocation keeps the online state
//   m = max z,  s = sum e^(z - m),  t = sum e^(z - m) (z - m)
// over its strided slice (z = logits * invT), the workgroup merges the states, and
//   lse = m + log s,  entropy = log s - t / s,  logprob = z[target] - lse.
// Keeping t relative to m avoids the cancellation of lse - sum p z (as native/cpu).
// targets < 0: logprob 0, entropy 0; targets >= V: NaN (the CPU backend throws).

struct Params { N: u32, V: u32, invT: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logprob: array<f32>;
@group(0) @binding(2) var<storage, read_write> entropy: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;

const NEG_BIG = -3.0e38;
// NaN for invalid targets; a function, since a const-expression may not evaluate to NaN.
fn nan_f32() -> f32 {
  let bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

const WG = 64u;  // narrow rows: fewer coroutine switches per barrier on lavapipe
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_t: array<f32, WG>;

@compute @workgroup_size(WG)
fn logprob_from_logits(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.N) { return; }
  let lid = lid3.x;
  let tgt = targets[row];
  if (tgt < 0) {
    if (lid == 0u) { logprob[row] = 0.0; entropy[row] = 0.0; }
    return;
  }
  let base = row * p.V;
  var m = NEG_BIG;
  var s = 0.0;
  var t = 0.0;
  for (var v = lid; v < p.V; v += WG) {
    let z = logits[base + v] * p.invT;
    if (z > m) {
      let a = exp(m - z);
      t = a * (t + (m - z) * s);
      s = a * s;
      m = z;
    }
    let e = exp(z - m);
    s += e;
    t += e * (z - m);
  }
  red_m[lid] = m;
  red_s[lid] = s;
  red_t[lid] = t;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (lid < k) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + k];
      let mm = max(m1, m2);
      let a1 = exp(m1 - mm);
      let a2 = exp(m2 - mm);
      let s1 = red_s[lid];
      let s2 = red_s[lid + k];
      red_t[lid] = a1 * (red_t[lid] + (m1 - mm) * s1) + a2 * (red_t[lid + k] + (m2 - mm) * s2);
      red_s[lid] = a1 * s1 + a2 * s2;
      red_m[lid] = mm;
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let ls = log(red_s[0]);
    let lp = logits[base + min(u32(tgt), p.V - 1u)] * p.invT - (red_m[0] + ls);
    logprob[row] = select(lp, nan_f32(), u32(tgt) >= p.V);
    entropy[row] = ls - red_t[0] / red_s[0];
  }
}
