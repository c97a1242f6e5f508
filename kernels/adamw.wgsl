// AdamW step, in place on param, m, v (n), in the same float order as native/cpu/adamw.cpp
// (torch's single-tensor AdamW); the bias corrections come from the host in double.
//   p *= 1 - lr * wd;  m += (g - m) * (1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

struct Params { n: u32, stepSize: f32, bc2Sqrt: f32, decay: f32, oneMinusB1: f32, beta2: f32, oneMinusB2: f32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.n) { return; }
  let g = grad[i];
  var pi = param[i] * p.decay;
  let mi = m[i] + (g - m[i]) * p.oneMinusB1;
  let vi = v[i] * p.beta2 + p.oneMinusB2 * g * g;
  pi -= p.stepSize * (mi / (sqrt(vi) / p.bc2Sqrt + p.eps));
  m[i] = mi;
  v[i] = vi;
  param[i] = pi;
}
