// Fused sampler: logits (B, V), u (B) -> ids (B) i32; semantics exactly as
// native/include/anvil/sample.h: q_i = exp(z_i - max z) with z = logits / temperature, then
// top-k (ties kept), top-p over the top-k survivors (smallest prefix by probability reaching
// topP, ties kept), min-p (q_i >= minP), and an inverse-CDF draw over the kept tokens in index
// order at u * kept mass. u is the CPU's splitmix64 uniform for the row's seed, computed on
// the host, so the same seed picks the same token as the CPU up to float rounding at a boundary.
//
// One 64-wide workgroup per row, no sort: the top-k and top-p thresholds are found by
// bisection on the float bit pattern of q (positive floats order like their bits): 31 passes
// of a count (top-k) or a mass (top-p) reduction each, exact thresholds that are values of q.
// q is kept in a (rows, V) scratch. Rows with NaN / +inf / all -inf logits give id -1 (the CPU
// throws); greedy is the first index of the maximum logit.

// iters = 31 bisection steps, a uniform rather than a constant so the compiler keeps the loop.
struct Params { rows: u32, V: u32, greedy: u32, topK: u32, invT: f32, topP: f32, minP: f32, iters: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> uniforms: array<f32>;

const EXP_FLOOR = -87.3;  // below this exp underflows: 0, as the CPU's vector exp
const ONE_BITS = 0x3f800000u;

const WG = 64u;  // narrow: lavapipe pays a coroutine switch per 8-wide subgroup at every barrier
const L1 = 8u;   // two-level reductions: WG = L1 * L1
var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;
var<workgroup> red2_f: array<f32, 9>;
var<workgroup> red2_u: array<u32, 9>;
var<workgroup> prefix: array<f32, WG>;
var<workgroup> found: u32;

// Workgroup reductions in two levels of L1, three barriers each: lavapipe compiles every barrier
// into a coroutine split, so a barrier per tree level makes the shader take far longer to JIT
// and run. Results are read back from workgroup memory after the last barrier; no control flow
// around a barrier depends on them (loop counts are uniforms, and a degenerate row is handled
// by a flag instead of an early return).
fn sum_f(lid: u32, v: f32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  if (lid < L1) {
    var s = 0.0;
    for (var i = 0u; i < L1; i++) { s += red_f[lid * L1 + i]; }
    red2_f[lid] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = 0.0;
    for (var i = 0u; i < L1; i++) { s += red2_f[i]; }
    red2_f[L1] = s;
  }
  workgroupBarrier();
  return red2_f[L1];
}

fn max_f(lid: u32, v: f32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  if (lid < L1) {
    var s = red_f[lid * L1];
    for (var i = 1u; i < L1; i++) { s = max(s, red_f[lid * L1 + i]); }
    red2_f[lid] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = red2_f[0];
    for (var i = 1u; i < L1; i++) { s = max(s, red2_f[i]); }
    red2_f[L1] = s;
  }
  workgroupBarrier();
  return red2_f[L1];
}

// op: 0 = sum, 1 = min, 2 = max, 3 = or
fn combine_u(a: u32, b: u32, op: u32) -> u32 {
  switch (op) {
    case 0u: { return a + b; }
    case 1u: { return min(a, b); }
    case 2u: { return max(a, b); }
    default: { return a | b; }
  }
}

fn reduce_u(lid: u32, v: u32, op: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  if (lid < L1) {
    var s = red_u[lid * L1];
    for (var i = 1u; i < L1; i++) { s = combine_u(s, red_u[lid * L1 + i], op); }
    red2_u[lid] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = red2_u[0];
    for (var i = 1u; i < L1; i++) { s = combine_u(s, red2_u[i], op); }
    red2_u[L1] = s;
  }
  workgroupBarrier();
  return red2_u[L1];
}

fn sum_u(lid: u32, v: u32) -> u32 { return reduce_u(lid, v, 0u); }
fn min_u(lid: u32, v: u32) -> u32 { return reduce_u(lid, v, 1u); }
fn max_u(lid: u32, v: u32) -> u32 { return reduce_u(lid, v, 2u); }
fn or_u(lid: u32, v: u32) -> u32 { return reduce_u(lid, v, 3u); }

@compute @workgroup_size(WG)
fn sample(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.V;

  // Max logit, and the degenerate rows: flags bit 0 = NaN, bit 1 = +inf, bit 2 = some finite logit.
  var mx = -3.0e38;
  var flags = 0u;
  for (var v = lid; v < p.V; v += WG) {
    let x = logits[base + v];
    let bits = bitcast<u32>(x);
    // Bit tests, not float compares: a compiler may assume floats are never NaN.
    if ((bits & 0x7fffffffu) > 0x7f800000u) { flags |= 1u; }
    else if (bits == 0x7f800000u) { flags |= 2u; }
    else if (bits != 0xff800000u) { flags |= 4u; mx = max(mx, x); }
  }
  let row_flags = or_u(lid, flags);
  let degenerate = (row_flags & 3u) != 0u || (row_flags & 4u) == 0u;
  let m = max_f(lid, mx);

  if (p.greedy != 0u) {
    var first = 0xffffffffu;
    for (var v = lid; v < p.V; v += WG) {
      if (logits[base + v] == m) { first = min(first, v); }
    }
    let idx = min_u(lid, first);
    if (lid == 0u) { ids[row] = select(i32(idx), -1, degenerate); }
    return;
  }

  // q = exp(z - max z), with z rounded exactly as the max was, so the max maps to 1.
  let mz = m * p.invT;
  var total = 0.0;
  for (var v = lid; v < p.V; v += WG) {
    let d = logits[base + v] * p.invT - mz;
    var e = 0.0;
    if (d >= EXP_FLOOR) { e = exp(d); }
    q[base + v] = e;
    total += e;
  }
  total = sum_f(lid, total);
  storageBarrier();

  var thr_bits = 0u;  // keep q >= bitcast<f32>(thr_bits)
  var kept_mass = total;
  if (p.topK > 0u && p.topK < p.V) {
    // largest t with count(q >= t) >= k; invariant count(lo) >= k > count(hi)
    var lo = 0u;
    var hi = ONE_BITS + 1u;
    for (var it = 0u; it < p.iters; it++) {
      let mid = lo + (hi - lo) / 2u;
      var cnt = 0u;
      for (var v = lid; v < p.V; v += WG) {
        if (bitcast<u32>(q[base + v]) >= mid) { cnt += 1u; }
      }
      let c = sum_u(lid, cnt);
      if (c >= p.topK) { lo = mid; } else { hi = mid; }
    }
    thr_bits = lo;
    var s = 0.0;
    for (var v = lid; v < p.V; v += WG) {
      let x = q[base + v];
      if (bitcast<u32>(x) >= thr_bits) { s += x; }
    }
    kept_mass = sum_f(lid, s);
  }
  if (p.topP < 1.0) {
    // largest t with mass(q >= t) >= topP * kept mass; invariant mass(lo) >= need > mass(hi)
    let need = p.topP * kept_mass;
    var lo = thr_bits;
    var hi = ONE_BITS + 1u;
    for (var it = 0u; it < p.iters; it++) {
      let mid = lo + (hi - lo) / 2u;
      var s = 0.0;
      for (var v = lid; v < p.V; v += WG) {
        let x = q[base + v];
        if (bitcast<u32>(x) >= mid) { s += x; }
      }
      let ms = sum_f(lid, s);
      if (ms >= need) { lo = mid; } else { hi = mid; }
    }
    thr_bits = lo;
  }
  if (p.minP > 0.0) { thr_bits = max(thr_bits, bitcast<u32>(p.minP)); }

  // Inverse CDF in index order: contiguous slices per invocation, a prefix over the slices,
  // then the invocation whose slice holds the target walks it.
  let chunk = (p.V + WG - 1u) / WG;
  let v0 = min(lid * chunk, p.V);
  let v1 = min(v0 + chunk, p.V);
  var own = 0.0;
  var last_kept = 0u;
  var has_kept = 0u;
  for (var v = v0; v < v1; v++) {
    let x = q[base + v];
    if (bitcast<u32>(x) >= thr_bits && x > 0.0) { own += x; last_kept = v; has_kept = 1u; }
  }
  prefix[lid] = own;
  if (lid == 0u) { found = 0xffffffffu; }
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0.0;
    for (var i = 0u; i < WG; i++) {
      let o = prefix[i];
      prefix[i] = run;
      run += o;
    }
    red_f[0] = run;
  }
  workgroupBarrier();
  let mass = red_f[0];  // (thread 0's scan total; read after the barrier)
  let target_mass = uniforms[row] * mass;
  let start = prefix[lid];
  if (own > 0.0 && target_mass >= start && target_mass < start + own) {
    var cum = start;
    for (var v = v0; v < v1; v++) {
      let x = q[base + v];
      if (bitcast<u32>(x) >= thr_bits && x > 0.0) {
        cum += x;
        if (cum > target_mass) { found = v; break; }
      }
    }
    if (found == 0xffffffffu) { found = last_kept; }  // rounding inside the slice
  }
  let fallback = max_u(lid, select(0u, last_kept, has_kept == 1u));  // the last kept token
  if (lid == 0u) {
    let f = found;
    ids[row] = select(i32(select(f, fallback, f == 0xffffffffu)), -1, degenerate);
  }
}
