// Online softmax over a stream of logits z, shared by the row-reducing kernels
// (included with `//!include online_softmax`; the including kernel defines WG):
//   m = max z,  s = sum e^(z - m),  t = sum e^(z - m) (z - m)
// so lse = m + log s and entropy = log s - t / s. Keeping t relative to m avoids the
// cancellation of lse - sum p z (as native/include/anvil/online_softmax.h).
struct Soft { m: f32, s: f32, t: f32 }
const SOFT_EMPTY = Soft(-3.0e38, 0.0, 0.0);

fn soft_push(a: Soft, z: f32) -> Soft {
  var r = a;
  if (z > r.m) {
    let c = exp(r.m - z);
    r.t = c * (r.t + (r.m - z) * r.s);
    r.s = c * r.s;
    r.m = z;
  }
  let e = exp(z - r.m);
  r.s += e;
  r.t += e * (z - r.m);
  return r;
}

fn soft_merge(a: Soft, b: Soft) -> Soft {
  let mm = max(a.m, b.m);
  let ca = exp(a.m - mm);
  let cb = exp(b.m - mm);
  return Soft(mm, ca * a.s + cb * b.s, ca * (a.t + (a.m - mm) * a.s) + cb * (b.t + (b.m - mm) * b.s));
}

// Merges one state per invocation over the workgroup; every invocation gets the result.
var<workgroup> soft_red: array<Soft, WG>;
fn soft_reduce(lid: u32, st: Soft) -> Soft {
  soft_red[lid] = st;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (lid < k) { soft_red[lid] = soft_merge(soft_red[lid], soft_red[lid + k]); }
    workgroupBarrier();
  }
  let r = soft_red[0];
  workgroupBarrier();
  return r;
}
