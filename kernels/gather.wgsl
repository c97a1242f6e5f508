// inp (N, C), idx (M) i32 -> out (M, C) = inp[idx]. The host may split inp into row chunks
// [r0, r0 + Rc); indices outside [0, N) give zero rows (a GPU kernel cannot throw).

struct Params { M: u32, C: u32, N: u32, r0: u32, Rc: u32, first: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<i32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.M * p.C) { return; }
  let r = idx[i / p.C];
  let c = i % p.C;
  if (r >= i32(p.r0) && r < i32(p.r0 + p.Rc)) {
    out[i] = inp[u32(r - i32(p.r0)) * p.C + c];
  } else if (p.first != 0u && (r < 0 || r >= i32(p.N))) {
    out[i] = 0.0;
  }
}
