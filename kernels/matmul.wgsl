// out (M, N) (+)= alpha * op(a) @ op(b); op(a) (M, K), op(b) (K, N).
// a is stored (M, K) or, with transA, (K, M); b is stored (K, N) or, with transB, (N, K).
// lda/ldb/ldo are the stored row lengths, so the host can run a sub-block of a bigger matrix
// (it splits problems whose operands exceed one storage binding). b is f32, or bf16 packed two
// per word (bBf16 = 1, frozen weights; lib/weight.wgsl); element i of the window is word-array
// element bOff + i (bOff: the window's start inside its aligned binding).
//
// 64x64 output tile per workgroup, 16x16 invocations computing 4x4 outputs each, K in steps of
// 16 staged through workgroup memory as vec4 so the inner loop is 2 loads + 16 FMAs.

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

const TK = 16u;
var<workgroup> As: array<vec4f, 256>; // [k][m / 4], TK x 64
var<workgroup> Bs: array<vec4f, 256>; // [k][n / 4], TK x 64

fn load_a(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (p.transA != 0u) { return a[k * p.lda + m]; }
  return a[m * p.lda + k];
}

fn load_b(k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
  if (p.transB != 0u) { return b_at(n * p.ldb + k); }
  return b_at(k * p.ldb + n);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let li = lid.y * 16u + lid.x;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // 1024 elements of each tile, 4 per invocation; walk memory-contiguously in the stored layout.
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * 256u;
      var kk: u32;
      var mm: u32;
      if (p.transA != 0u) { kk = e / 64u; mm = e % 64u; } else { mm = e / TK; kk = e % TK; }
      As[kk * 16u + mm / 4u][mm % 4u] = load_a(m0 + mm, k0 + kk);
      var kb: u32;
      var nn: u32;
      if (p.transB != 0u) { nn = e / TK; kb = e % TK; } else { kb = e / 64u; nn = e % 64u; }
      Bs[kb * 16u + nn / 4u][nn % 4u] = load_b(k0 + kb, n0 + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let av = As[kk * 16u + lid.y];
      let bv = Bs[kk * 16u + lid.x];
      acc0 += av.x * bv;
      acc1 += av.y * bv;
      acc2 += av.z * bv;
      acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { break; }
      let idx = m * p.ldo + n;
      var v = p.alpha * accs[i][j];
      if (p.accumulate != 0u) { v += out[idx]; }
      out[idx] = v;
    }
  }
}
