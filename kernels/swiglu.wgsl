// SwiGLU. gate, up (n) -> out (n) = silu(gate) * up, silu(g) = g * sigmoid(g).
// Backward: dgate = dout * up * s * (1 + g * (1 - s)), dup = dout * silu(g), s = sigmoid(g).

struct Count { n: u32 }
@group(0) @binding(0) var<uniform> p: Count;

fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid.x; }
fn sigmoid(g: f32) -> f32 { return 1.0 / (1.0 + exp(-g)); }

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@compute @workgroup_size(256)
fn swiglu_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}

@group(0) @binding(1) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(2) var<storage, read_write> dup: array<f32>;
@group(0) @binding(3) var<storage, read> b_dout: array<f32>;
@group(0) @binding(4) var<storage, read> b_gate: array<f32>;
@group(0) @binding(5) var<storage, read> b_up: array<f32>;
@compute @workgroup_size(256)
fn swiglu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.n) { return; }
  let g = b_gate[i];
  let s = sigmoid(g);
  let d = b_dout[i];
  dgate[i] = d * b_up[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;
}
