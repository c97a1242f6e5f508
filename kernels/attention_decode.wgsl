// Attention against a KV cache (prefill and decode), scale 1/sqrt(hd).
// q (B, Tq, nh, hd), kCache, vCache (B, S, nkv, hd), pos (B) i32 -> out (B, Tq, nh, hd)
// Query t of row b sits at position pos[b] + t and sees cache positions 0 .. pos[b] + t
// (clamped to S - 1: the host cannot check pos without a readback, the CPU backend throws).
// One workgroup of NT invocations per (b, t, h) (flash-decoding inside a workgroup): each
// invocation runs an online softmax over keys j = lid, lid + NT, ...; the workgroup then
// rescales the partial sums to the common max and adds them. NT * HD floats of workgroup memory.

// qoff / coff / poff: element offsets of this batch chunk in the bound windows of q and out /
// the caches / pos (the host splits caches bigger than one binding over several dispatches).
struct Dims { B: u32, Tq: u32, S: u32, nh: u32, nkv: u32, scale: f32, qoff: u32, coff: u32, poff: u32 }
@group(0) @binding(0) var<uniform> p: Dims;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> kc: array<f32>;
@group(0) @binding(4) var<storage, read> vc: array<f32>;
@group(0) @binding(5) var<storage, read> pos: array<i32>;

const NEG_BIG = -3.0e38;
var<workgroup> part: array<f32, NT * HD>;
var<workgroup> part_m: array<f32, NT>;
var<workgroup> part_l: array<f32, NT>;

@compute @workgroup_size(NT)
fn attention_decode(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let g = wid.y * nwg.x + wid.x;  // ((b * Tq + t) * nh + h)
  if (g >= p.B * p.Tq * p.nh) { return; }
  let lid = lid3.x;
  let h = g % p.nh;
  let bt = g / p.nh;
  let t = bt % p.Tq;
  let b = bt / p.Tq;
  let kvh = h / (p.nh / p.nkv);
  let last = min(u32(max(pos[p.poff + b], 0)) + t, p.S - 1u);
  let qo = p.qoff + g * HD;
  var qv: array<f32, HD>;
  var acc: array<f32, HD>;
  for (var d = 0u; d < HD; d++) { qv[d] = q[qo + d] * p.scale; acc[d] = 0.0; }
  var m = NEG_BIG;
  var l = 0.0;
  for (var j = lid; j <= last; j += NT) {
    let ko = p.coff + ((b * p.S + j) * p.nkv + kvh) * HD;
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += qv[d] * kc[ko + d]; }
    if (s > m) {
      let c = exp(m - s);
      l *= c;
      for (var d = 0u; d < HD; d++) { acc[d] *= c; }
      m = s;
    }
    let e = exp(s - m);
    l += e;
    for (var d = 0u; d < HD; d++) { acc[d] += e * vc[ko + d]; }
  }
  part_m[lid] = m;
  workgroupBarrier();
  var mx = NEG_BIG;
  for (var i = 0u; i < NT; i++) { mx = max(mx, part_m[i]); }
  let c = exp(m - mx);
  part_l[lid] = l * c;
  for (var d = 0u; d < HD; d++) { part[lid * HD + d] = acc[d] * c; }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < NT; i++) { total += part_l[i]; }
  for (var d = lid; d < HD; d += NT) {
    var s = 0.0;
    for (var i = 0u; i < NT; i++) { s += part[i * HD + d]; }
    out[qo + d] = s / total;
  }
}
