// Token embedding. ids (N) i32, table (V, C) -> out (N, C); backward dtable (V, C) +=.
// The host may split the table into vocabulary chunks [v0, v0 + Vc) (one storage binding is
// capped); each dispatch handles the ids that fall in its chunk. Ids outside [0, V) produce
// zero rows (the CPU backend throws; a GPU kernel cannot, so it never reads out of bounds).
// The forward's table may be bf16 packed two per word (tBf16 = 1, a frozen embedding; row
// element e of the chunk is word-array element tOff + e), widened to f32 (lib/weight.wgsl).
//
// Backward is race-free without float atomics: a first pass links each position to the next
// position holding the same id and marks the first occurrence ("head"); then the head of
// each id walks its chain and adds the summed rows into dtable, one invocation per channel.

struct Params { N: u32, C: u32, V: u32, v0: u32, Vc: u32, first: u32, tOff: u32, tBf16: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn flat(wid: vec3u, nwg: vec3u, lid: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid.x; }

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read> table: array<u32>;

//!include weight

@compute @workgroup_size(256)
fn embedding_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N * p.C) { return; }
  let n = i / p.C;
  let c = i % p.C;
  let id = ids[n];
  if (id >= i32(p.v0) && id < i32(p.v0 + p.Vc)) {
    let e = p.tOff + u32(id - i32(p.v0)) * p.C + c;
    out[i] = weight_from_word(table[select(e, e >> 1u, p.tBf16 != 0u)], e, p.tBf16);
  } else if (p.first != 0u && (id < 0 || id >= i32(p.V))) {
    out[i] = 0.0;
  }
}

// links[n] = next position with the same id (or -1); links[N + n] = 1 if n is the first.
@group(0) @binding(1) var<storage, read_write> links: array<i32>;
@group(0) @binding(2) var<storage, read> l_ids: array<i32>;
@compute @workgroup_size(256)
fn embedding_links(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = flat(wid, nwg, lid);
  if (n >= p.N) { return; }
  let id = l_ids[n];
  var next = -1;
  for (var j = n + 1u; j < p.N; j++) {
    if (l_ids[j] == id) { next = i32(j); break; }
  }
  var head = 1;
  for (var j = 0u; j < n; j++) {
    if (l_ids[j] == id) { head = 0; break; }
  }
  links[n] = next;
  links[p.N + n] = head;
}

@group(0) @binding(1) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_ids: array<i32>;
@group(0) @binding(4) var<storage, read> b_links: array<i32>;
@compute @workgroup_size(256)
fn embedding_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat(wid, nwg, lid);
  if (i >= p.N * p.C) { return; }
  let n = i / p.C;
  let c = i % p.C;
  let id = b_ids[n];
  if (b_links[p.N + n] == 0 || id < i32(p.v0) || id >= i32(p.v0 + p.Vc)) { return; }
  var s = 0.0;
  var j = i32(n);
  loop {
    s += dout[u32(j) * p.C + c];
    j = b_links[u32(j)];
    if (j < 0) { break; }
  }
  let t = u32(id - i32(p.v0)) * p.C + c;
  dtable[t] = dtable[t] + s;
}
