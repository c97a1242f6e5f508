// RMSNorm. inp (N, C), weight (C) -> out (N, C), rstd (N)
//   out = inp * rstd * weight,  rstd = 1 / sqrt(mean(inp^2) + eps)
// Backward: dout (N, C) -> dinp (N, C) (overwritten), dweight (C) +=
//   dinp = rstd * (dout * w - inp * rstd^2 * mean(dout * w * inp))
// One 64-wide workgroup per row; dweight reduces over rows in two passes (as bias.wgsl).

const RB = 256u;
// Row kernels use 64 invocations: on lavapipe every barrier switches coroutines for each
// 8-wide subgroup of the workgroup, so narrower workgroups reduce rows ~2x faster.
const WG = 64u;

struct Fwd { N: u32, C: u32, eps: f32 }
struct Dims { N: u32, C: u32 }

var<workgroup> red: array<f32, WG>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@compute @workgroup_size(WG)
fn rmsnorm_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= pf.N) { return; }  // uniform across the workgroup
  let base = row * pf.C;
  var s = 0.0;
  for (var c = lid.x; c < pf.C; c += WG) { let x = inp[base + c]; s += x * x; }
  let ss = reduce_sum(lid.x, s);
  let r = 1.0 / sqrt(ss / f32(pf.C) + pf.eps);
  for (var c = lid.x; c < pf.C; c += WG) { out[base + c] = inp[base + c] * r * weight[c]; }
  if (lid.x == 0u) { rstd_out[row] = r; }
}

@group(0) @binding(0) var<uniform> pd: Dims;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_inp: array<f32>;
@group(0) @binding(4) var<storage, read> b_weight: array<f32>;
@group(0) @binding(5) var<storage, read> b_rstd: array<f32>;
@compute @workgroup_size(WG)
fn rmsnorm_backward_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= pd.N) { return; }
  let base = row * pd.C;
  var s = 0.0;
  for (var c = lid.x; c < pd.C; c += WG) { s += b_dout[base + c] * b_weight[c] * b_inp[base + c]; }
  let rdot = reduce_sum(lid.x, s);
  let r = b_rstd[row];
  let k = r * r * rdot / f32(pd.C);
  for (var c = lid.x; c < pd.C; c += WG) {
    dinp[base + c] = r * (b_dout[base + c] * b_weight[c] - b_inp[base + c] * k);
  }
}

// grid (ceil(C / 64), nblocks): partial[block, c] = sum over the block's rows of dout * inp * rstd
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> w_dout: array<f32>;
@group(0) @binding(3) var<storage, read> w_inp: array<f32>;
@group(0) @binding(4) var<storage, read> w_rstd: array<f32>;
@compute @workgroup_size(64)
fn rmsnorm_dweight_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  if (c >= pd.C) { return; }
  let r0 = wid.y * RB;
  let r1 = min(r0 + RB, pd.N);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += w_dout[r * pd.C + c] * w_inp[r * pd.C + c] * w_rstd[r]; }
  partial[wid.y * pd.C + c] = s;
}

// dweight[c] += sum over blocks (N here is the number of blocks)
@group(0) @binding(1) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(2) var<storage, read> partial_in: array<f32>;
@compute @workgroup_size(64)
fn rmsnorm_dweight_finish(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  if (c >= pd.C) { return; }
  var s = 0.0;
  for (var k = 0u; k < pd.N; k++) { s += partial_in[k * pd.C + c]; }
  dweight[c] = dweight[c] + s;
}
