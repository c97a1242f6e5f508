// x (B, Tq, nkv, hd), pos (B) i32 -> cache (B, S, nkv, hd) rows pos[b] .. pos[b] + Tq - 1.
// Rows that would fall outside [0, S) are skipped (the CPU backend throws; a kernel cannot).

// row = nkv * hd; coff / xoff / poff: element offsets of this batch chunk in the bound windows.
struct Dims { B: u32, Tq: u32, S: u32, row: u32, coff: u32, xoff: u32, poff: u32 }
@group(0) @binding(0) var<uniform> p: Dims;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<i32>;

@compute @workgroup_size(256)
fn kv_write(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (i >= p.B * p.Tq * p.row) { return; }
  let e = i % p.row;
  let bt = i / p.row;
  let t = bt % p.Tq;
  let b = bt / p.Tq;
  let dst = pos[p.poff + b] + i32(t);
  if (dst < 0 || dst >= i32(p.S)) { return; }
  cache[p.coff + (b * p.S + u32(dst)) * p.row + e] = x[p.xoff + i];
}
