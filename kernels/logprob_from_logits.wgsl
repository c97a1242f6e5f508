// logits (N, V), targets (N) i32 -> logprob (N), entropy (N) of softmax(logits / temperature).
// One 64-wide workgroup per row, one pass: each invocation keeps an online softmax state
// (lib/online_softmax.wgsl) over its strided slice of z = logits * invT, the workgroup merges
// the states, and logprob = z[target] - lse.
// targets < 0: logprob 0, entropy 0; targets >= V: NaN (the CPU backend throws).

struct Params { N: u32, V: u32, invT: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logprob: array<f32>;
@group(0) @binding(2) var<storage, read_write> entropy: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<i32>;

// NaN for invalid targets; a function, since a const-expression may not evaluate to NaN.
fn nan_f32() -> f32 {
  let bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}

const WG = 64u;  // narrow rows: fewer coroutine switches per barrier on lavapipe
//!include online_softmax

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
  var st = SOFT_EMPTY;
  for (var v = lid; v < p.V; v += WG) { st = soft_push(st, logits[base + v] * p.invT); }
  let c = soft_reduce(lid, st);
  if (lid == 0u) {
    let ls = log(c.s);
    let lp = logits[base + min(u32(tgt), p.V - 1u)] * p.invT - (c.m + ls);
    logprob[row] = select(lp, nan_f32(), u32(tgt) >= p.V);
    entropy[row] = ls - c.t / c.s;
  }
}
