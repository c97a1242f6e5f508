// out (N, C) += bias (C); dbias (C) += column sums of dout (N, C).
// The backward reduces over rows in two passes (no float atomics): partial sums over blocks of
// RB rows into scratch (nblocks, C), then one invocation per column adds the blocks into dbias.

const RB = 256u;

struct Dims { N: u32, C: u32 }
@group(0) @binding(0) var<uniform> p: Dims;

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@compute @workgroup_size(256)
fn bias_add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i < p.N * p.C) { out[i] = out[i] + bias[i % p.C]; }
}

// grid (ceil(C / 64), nblocks): partial[block, c] = sum of dout[block*RB .. +RB, c]
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@compute @workgroup_size(64)
fn bias_backward_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  if (c >= p.C) { return; }
  let r0 = wid.y * RB;
  let r1 = min(r0 + RB, p.N);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += dout[r * p.C + c]; }
  partial[wid.y * p.C + c] = s;
}

// dbias[c] += sum over blocks (N here is the number of blocks)
@group(0) @binding(1) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(2) var<storage, read> partial_in: array<f32>;
@compute @workgroup_size(64)
fn bias_backward_finish(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  if (c >= p.C) { return; }
  var s = 0.0;
  for (var k = 0u; k < p.N; k++) { s += partial_in[k * p.C + c]; }
  dbias[c] = dbias[c] + s;
}
