// Cross-entropy. logits (N, V), targets (N) i32 (< 0: ignored) -> loss (N) = lse - logits[target]
// Backward: dloss (N) -> dlogits (N, V) = (softmax - onehot) * dloss, zero rows for ignored targets.
// Bindings: 1 = output, 2 = logits, 3 = targets (shared by both entry points), 4 = dloss.
// One 64-wide workgroup per row: each invocation keeps an online (max, sum of exp) over its
// strided slice of the row, then the workgroup merges them. Targets >= V give NaN (the CPU
// backend throws; a kernel cannot).

struct Dims { N: u32, V: u32 }
@group(0) @binding(0) var<uniform> p: Dims;

const WG = 64u;  // narrow rows: fewer coroutine switches per barrier on lavapipe
//!include online_softmax

// NaN for invalid targets; a function, since a const-expression may not evaluate to NaN.
fn nan_f32() -> f32 {
  let bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}


// Row log-sum-exp, computed by the whole workgroup.
fn row_lse(lid: u32, base: u32, x_len: u32) -> f32 {
  var st = SOFT_EMPTY;
  for (var v = lid; v < x_len; v += WG) { st = soft_push(st, logits[base + v]); }
  let c = soft_reduce(lid, st);
  return c.m + log(c.s);
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
