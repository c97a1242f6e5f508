// Rotary position embedding, rotate-half layout (transformers' Llama / Qwen3):
//   out[i] = x[i] cos - x[i + hd/2] sin,  out[i + hd/2] = x[i + hd/2] cos + x[i] sin
// inp (N, nh, hd), pos (N) i32 -> out (N, nh, hd). sign = -1 gives the backward (inverse rotation).
// cos/sin come from a host table (P, hd/2) formed in double, as native/cpu/rope.cpp does, since
// pos * inv_freq in float32 is off by ~1e-3 rad at positions ~1e4; positions past the table
// (or negative) fall back to float32 on the GPU. One invocation per (row, head, i < hd/2).
// `rope_inplace` serves out == inp (WebGPU forbids binding one buffer twice when written).

struct Params { N: u32, nh: u32, half: u32, P: u32, theta: f32, sign: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>; // cos (P, half) then sin (P, half)
@group(0) @binding(3) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> inp: array<f32>;

fn angle(pos_n: i32, i: u32) -> vec2f {
  if (pos_n >= 0 && u32(pos_n) < p.P) {
    let k = u32(pos_n) * p.half + i;
    return vec2f(table[k], p.sign * table[p.P * p.half + k]);
  }
  let a = f32(pos_n) * pow(p.theta, -f32(i) / f32(p.half));
  return vec2f(cos(a), p.sign * sin(a));
}

fn index(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid.x; }

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.N * p.nh * p.half) { return; }
  let i = g % p.half;
  let row = g / p.half;  // n * nh + h
  let cs = angle(pos[row / p.nh], i);
  let base = row * 2u * p.half;
  let x1 = inp[base + i];
  let x2 = inp[base + i + p.half];
  out[base + i] = x1 * cs.x - x2 * cs.y;
  out[base + i + p.half] = x2 * cs.x + x1 * cs.y;
}

@compute @workgroup_size(256)
fn rope_inplace(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let g = index(wid, nwg, lid);
  if (g >= p.N * p.nh * p.half) { return; }
  let i = g % p.half;
  let row = g / p.half;
  let cs = angle(pos[row / p.nh], i);
  let base = row * 2u * p.half;
  let x1 = out[base + i];
  let x2 = out[base + i + p.half];
  out[base + i] = x1 * cs.x - x2 * cs.y;
  out[base + i + p.half] = x2 * cs.x + x1 * cs.y;
}
