// Cross-entropy. logits (N, V), targets (N) i32 (< 0: ignored) -> loss (N) = lse - logits[target]
// Backward: dloss (N) -> dlogits (N, V) = (softmax - onehot) * dloss, zero rows for ignored targets.
// Bindings: 1 = output, 2 = logits, 3 = targets (shared by both entry points), 4 = dloss.
// One 64-wide workgroup per row: each invocation keeps an online (max, sum of exp) over its
// strided slice of the row, then the workgroup merges them. Targets >= V give NaN (the CPU
// backend throws; a kernel cannot).

struct Dims { N: u32, V: u32 }
@group(0) @binding(0) var<uniform> p: Dims;

const WG = 64u;  // narrow rows: fewer coroutine switches per barrier on lavapipe
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

const NEG_BIG = -3.0e38;
// NaN for invalid targets; a function, since a const-expression may not evaluate to NaN.
fn nan_f32() -> f32 {
  let bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}


// Row log-sum-exp, computed by the whole workgroup.
fn row_lse(lid: u32, base: u32, x_len: u32) -> f32 {
  var m = NEG_BIG;
  var s = 0.0;
  for (var v = lid; v < x_len; v += WG) {
    let x = logits[base + v];
    if (x > m) { s = s * exp(m - x); m = x; }
    s += exp(x - m);
  }
  red_m[lid] = m;
  red_s[lid] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (lid < k) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + k];
      let mm = max(m1, m2);
      red_s[lid] = red_s[lid] * exp(m1 - mm) + red_s[lid + k] * exp(m2 - mm);
      red_m[lid] = mm;
    }
    workgroupBarrier();
  }
  let r = red_m[0] + log(red_s[0]);
  workgroupBarrier();
  return r;
}

@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<i32>;
@compute @workgroup_size(WG)
fn crossentropy_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.N) { return; }
  let t = targets[row];
  if (t < 0) {
    if (lid.x == 0u) { loss[row] = 0.0; }
    return;
  }
  let base = row * p.V;
  let lse = row_lse(lid.x, base, p.V);
  if (lid.x == 0u) { loss[row] = select(lse - logits[base + min(u32(t), p.V - 1u)], nan_f32(), u32(t) >= p.V); }
}

@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read> dloss: array<f32>;
@compute @workgroup_size(WG)
fn crossentropy_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.N) { return; }
  let t = targets[row];
  let base = row * p.V;
  if (t < 0) {
    for (var v = lid.x; v < p.V; v += WG) { dlogits[base + v] = 0.0; }
    return;
  }
  let lse = row_lse(lid.x, base, p.V);
  let d = dloss[row];
  for (var v = lid.x; v < p.V; v += WG) {
    var g = exp(logits[base + v] - lse) * d;
    if (v == u32(t)) { g -= d; }
    dlogits[base + v] = select(g, nan_f32(), u32(t) >= p.V);
  }
}
