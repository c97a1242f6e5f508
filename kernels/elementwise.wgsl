// Elementwise ops and the sum of squares. n = elements in this dispatch (the host splits
// tensors larger than one storage binding into chunks). One invocation per element on a 2-D
// grid of 256-wide workgroups (the grid folds past 65535 workgroups per dimension).

struct Count { n: u32 }
struct Scaled { n: u32, alpha: f32 }
struct Fill { n: u32, bits: u32 }

fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid.x; }

// out (n) = a (n) + b (n)
@group(0) @binding(0) var<uniform> pc: Count;
@group(0) @binding(1) var<storage, read_write> add_out: array<f32>;
@group(0) @binding(2) var<storage, read> add_a: array<f32>;
@group(0) @binding(3) var<storage, read> add_b: array<f32>;
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < pc.n) { add_out[i] = add_a[i] + add_b[i]; }
}

// dst (n) += alpha * src (n)
@group(0) @binding(0) var<uniform> ps: Scaled;
@group(0) @binding(1) var<storage, read_write> acc_dst: array<f32>;
@group(0) @binding(2) var<storage, read> acc_src: array<f32>;
@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < ps.n) { acc_dst[i] = acc_dst[i] + ps.alpha * acc_src[i]; }
}

// t (n) *= alpha
@group(0) @binding(1) var<storage, read_write> scale_t: array<f32>;
@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < ps.n) { scale_t[i] = scale_t[i] * ps.alpha; }
}

// t (n) = bits (f32 or i32 bit pattern)
@group(0) @binding(0) var<uniform> pf: Fill;
@group(0) @binding(1) var<storage, read_write> fill_t: array<u32>;
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i < pf.n) { fill_t[i] = pf.bits; }
}

// Sum of squares in two passes (no float atomics in WebGPU): each of `groups` workgroups
// strides over the chunk and writes one partial; one workgroup then adds them into out.
struct Partial { n: u32, groups: u32 }
@group(0) @binding(0) var<uniform> pp: Partial;
@group(0) @binding(1) var<storage, read_write> ss_partial: array<f32>;
@group(0) @binding(2) var<storage, read> ss_x: array<f32>;
var<workgroup> red: array<f32, 256>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn sum_squares_partial(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = wid.x * 256u + lid.x; i < pp.n; i += pp.groups * 256u) {
    let x = ss_x[i];
    s += x * x;
  }
  let r = reduce_sum(lid.x, s);
  if (lid.x == 0u) { ss_partial[wid.x] = r; }
}

// out (1) += sum(partial[0 .. groups))
@group(0) @binding(1) var<storage, read_write> ssf_out: array<f32>;
@group(0) @binding(2) var<storage, read> ssf_partial: array<f32>;
@compute @workgroup_size(256)
fn sum_squares_finish(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = lid.x; i < pp.groups; i += 256u) { s += ssf_partial[i]; }
  let r = reduce_sum(lid.x, s);
  if (lid.x == 0u) { ssf_out[0] = ssf_out[0] + r; }
}
