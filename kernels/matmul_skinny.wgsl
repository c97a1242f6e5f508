// matmul for few rows (decode: M <= MR, a define of 4, 8, 16 or 32); same contract and params
// as matmul.wgsl: out (M, N) (+)= alpha * op(a) @ op(b).
// The 64x64 tiles of matmul.wgsl would compute mostly padding for M = 1..32 (a decode step's
// LM head and projections). Here one invocation owns one output column n for all M rows: b is
// read once, the rows of a are staged through workgroup memory in K tiles of 64. b may be bf16
// (bBf16, bOff: as in matmul.wgsl).

struct Params { M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldo: u32, transA: u32, transB: u32, accumulate: u32, alpha: f32, bOff: u32, bBf16: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;

//!include weight

fn b_at(i: u32) -> f32 {
  let e = p.bOff + i;
  return weight_from_word(b[select(e, e >> 1u, p.bBf16 != 0u)], e, p.bBf16);
}

var<workgroup> As: array<f32, MR * 64>; // [m][k]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = wid.x * 64u + lid.x;
  var acc: array<f32, MR>;
  for (var k0 = 0u; k0 < p.K; k0 += 64u) {
    let k = k0 + lid.x;
    for (var m = 0u; m < MR; m++) {
      var x = 0.0;
      if (m < p.M && k < p.K) {
        if (p.transA != 0u) { x = a[k * p.lda + m]; } else { x = a[m * p.lda + k]; }
      }
      As[m * 64u + lid.x] = x;
    }
    workgroupBarrier();
    if (n < p.N) {
      let kend = min(64u, p.K - k0);
      for (var kk = 0u; kk < kend; kk++) {
        var bv: f32;
        if (p.transB != 0u) { bv = b_at(n * p.ldb + k0 + kk); } else { bv = b_at((k0 + kk) * p.ldb + n); }
        for (var m = 0u; m < MR; m++) { acc[m] += As[m * 64u + kk] * bv; }
      }
    }
    workgroupBarrier();
  }
  if (n >= p.N) { return; }
  for (var m = 0u; m < p.M; m++) {
    let idx = m * p.ldo + n;
    var v = p.alpha * acc[m];
    if (p.accumulate != 0u) { v += out[idx]; }
    out[idx] = v;
  }
}
