// linearSequenceLoss as forward, lossGrad, backward: the logits are made twice (4 matmuls, not
// the CPU kernel's 3). The reference the tests hold the CPU kernel to, and the op on backends
// without it. lossGrad gets every segment in one call, ordered as the kernel orders them (by
// group, then by first row).
import type { Backend, SegmentLossGrad, Tensor } from "./backend.js";

export async function linearSequenceComposed(be: Backend, logprob: Tensor, entropy: Tensor, dhidden: Tensor, dweight: Tensor | null, hidden: Tensor, weight: Tensor, targets: Tensor, segment: Int32Array, groupOf: Int32Array, lossGrad: SegmentLossGrad, temperature: number): Promise<Float64Array> {
  const N = segment.length;
  // rows outside the loss get target -1: the forward writes 0 for them, the backward skips them
  const tg = (await be.read(targets)) as Int32Array;
  const inLoss = Int32Array.from(tg, (t, i) => (segment[i]! >= 0 && t >= 0 ? t : -1));
  const [tgt, lse] = [be.upload(inLoss, [N]), be.zeros([N])];
  be.linearLogprobForward(logprob, entropy, lse, hidden, weight, tgt, temperature);
  const lp = (await be.read(logprob)) as Float32Array;
  const firstRow = new Map<number, number>();
  const sums = new Float64Array(groupOf.length);
  for (let i = 0; i < N; i++) {
    if (inLoss[i]! < 0) continue;
    const s = segment[i]!;
    if (!firstRow.has(s)) firstRow.set(s, i);
    sums[s] += lp[i]!;
  }
  const segs = Int32Array.from([...firstRow.keys()].sort((a, b) => groupOf[a]! - groupOf[b]! || firstRow.get(a)! - firstRow.get(b)!));
  const d = lossGrad(segs, Float64Array.from(segs, (s) => sums[s]!));
  if (d.length !== segs.length) throw new TypeError(`linearSequenceLoss: lossGrad must return ${segs.length} numbers, one per segment it was given`);
  const dOf = new Map<number, number>();
  segs.forEach((s, k) => dOf.set(s, Number(d[k])));
  const dlp = be.upload(Float32Array.from(inLoss, (t, i) => (t >= 0 ? dOf.get(segment[i]!)! : 0)), [N]);
  const dent = be.zeros([N]);
  be.linearLogprobBackward(dhidden, dweight, dlp, dent, hidden, weight, tgt, lse, entropy, temperature);
  for (const t of [tgt, lse, dlp, dent]) t.dispose();
  return sums;
}
