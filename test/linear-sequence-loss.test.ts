// The fused linear sequence loss (linearSequenceLoss: DPO & co., whose token gradients come from
// summed log-probs) against forward, lossGrad, backward (linear-sequence-composed.ts), on the CPU
// kernel: blocks of whole groups, a group larger than a block (its two-pass path), rows outside
// the loss, a frozen bf16 head, and what lossGrad is given and may do wrong.
import { describe, expect, it } from "vitest";
import type { SegmentLossGrad, Tensor } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { linearSequenceComposed } from "../src/backend/linear-sequence-composed.js";
import * as kernels from "../src/kernels.js";
import { mulberry32 as rng } from "../src/util/rng.js";
import { normals, relErr } from "./helpers/reference-ops.js";

const cpu = new CpuBackend();

/** P pairs packed as DPO packs them: rows 0..P-1 chosen, P..2P-1 rejected, T positions each; the
 * completion (segment = the row) covers the positions from a prompt length on. */
function makeCase(P: number, T: number, H: number, V: number, seed: number, lengths?: number[]) {
  const r = rng(seed);
  const B = 2 * P, N = B * T;
  const segment = new Int32Array(N).fill(-1);
  for (let b = 0; b < B; b++) {
    const len = lengths?.[b] ?? 1 + Math.floor(r() * (T - 2));
    for (let t = T - len; t < T; t++) segment[b * T + t] = b;
  }
  const targets = Int32Array.from({ length: N }, (_, i) => (segment[i] >= 0 && r() < 0.05 ? -1 : Math.floor(r() * V)));
  const groupOf = Int32Array.from({ length: B }, (_, b) => b % P);
  return { N, H, V, P, hidden: normals(N * H, seed + 1, 1.5), weight: normals(V * H, seed + 2, 0.5), targets, segment, groupOf, dwInit: normals(V * H, seed + 5, 0.01) };
}

/** A DPO-like loss per pair: softplus(-(chosen - rejected) / scale); records every call. */
function pairLossGrad(P: number, calls: { segs: number[]; sums: number[] }[], scale: number): SegmentLossGrad {
  return (segs, sums) => {
    calls.push({ segs: [...segs], sums: [...sums] });
    const at = new Map<number, number>();
    segs.forEach((s, j) => at.set(s, j));
    return Array.from(segs, (s) => {
      const i = s % P, c = at.get(i), r = at.get(P + i);
      const margin = ((c === undefined ? 0 : sums[c]) - (r === undefined ? 0 : sums[r])) / scale;
      const g = -1 / (1 + Math.exp(margin)) / scale; // d softplus(-m) / d chosen
      return s < P ? g : -g;
    });
  };
}

async function run(x: ReturnType<typeof makeCase>, composed: boolean, o: { bf16?: boolean; noDweight?: boolean; grad?: SegmentLossGrad; scale?: number } = {}) {
  const { N, H, V } = x;
  const calls: { segs: number[]; sums: number[] }[] = [];
  const lp = cpu.upload(normals(N, 7), [N]), ent = cpu.upload(normals(N, 8), [N]); // overwritten
  const dh = cpu.upload(normals(N * H, 9), [N, H]); // overwritten
  const dw: Tensor | null = o.noDweight ? null : cpu.upload(x.dwInit, [V, H]); // accumulated into
  const args = [lp, ent, dh, dw, cpu.upload(x.hidden, [N, H]), cpu.upload(x.weight, [V, H], o.bf16 ? "bf16" : "f32"), cpu.upload(x.targets, [N]), x.segment, x.groupOf, o.grad ?? pairLossGrad(x.P, calls, o.scale ?? 4), 0.8] as const;
  const sums = await (composed ? linearSequenceComposed(cpu, ...args) : cpu.linearSequenceLoss(...args));
  const rd = async (t: Tensor | null) => (t ? ((await cpu.read(t)) as Float32Array) : new Float32Array(0));
  return { lp: await rd(lp), ent: await rd(ent), dh: await rd(dh), dw: await rd(dw), calls, sums };
}

describe("linearSequenceLoss (cpu)", () => {
  it("equals forward, lossGrad, backward across blocks of whole pairs, each segment given once with its pair", async () => {
    const x = makeCase(12, 40, 16, 3000, 11); // ~450 completion rows: 256-row blocks
    const [got, want] = [await run(x, false), await run(x, true)];
    for (const k of ["lp", "ent", "dh", "dw"] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(1e-5);
    expect(got.calls.length).toBeGreaterThan(1);
    const given = got.calls.flatMap((c) => c.segs);
    expect([...given].sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, b) => b));
    for (const c of got.calls) for (const s of c.segs) expect(c.segs).toContain((s + 12) % 24); // its pair's other row
    // the sums are the sums of the composed forward's log-probs
    const sumOf = new Map(want.calls[0]!.segs.map((s, j) => [s, want.calls[0]!.sums[j]!]));
    for (const c of got.calls) c.segs.forEach((s, j) => expect(Math.abs(c.sums[j]! - sumOf.get(s)!)).toBeLessThan(1e-3));
    // and the op returns them, per segment
    for (const r of [got, want]) r.calls.forEach((c) => c.segs.forEach((s, j) => expect(r.sums[s]).toBe(c.sums[j])));
    expect(relErr(got.sums, want.sums)).toBeLessThan(1e-6);
    // rows outside the loss: log-prob, entropy and gradient 0
    for (let i = 0; i < x.N; i++)
      if (x.segment[i] < 0 || x.targets[i] < 0) expect([got.lp[i], got.ent[i], ...got.dh.subarray(i * x.H, (i + 1) * x.H)].every((v) => v === 0), `row ${i}`).toBe(true);
  });

  it("takes a pair larger than a block through forward, lossGrad, backward", async () => {
    // 256-row blocks at V = 3000: pair 0 has 300 completion rows, pair 1 fits
    const x = makeCase(2, 160, 8, 3000, 3, [150, 10, 150, 10]);
    const [got, want] = [await run(x, false), await run(x, true)];
    for (const k of ["lp", "ent", "dh", "dw"] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(1e-5);
    expect(got.calls.map((c) => c.segs)).toEqual([[0, 2], [1, 3]]);
  });

  it("takes a frozen bf16 head without dweight, as the composition does", async () => {
    const x = makeCase(5, 30, 16, 700, 23);
    const [got, want] = [await run(x, false, { bf16: true, noDweight: true }), await run(x, true, { bf16: true, noDweight: true })];
    for (const k of ["lp", "ent", "dh"] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(1e-5);
  });

  it("is deterministic", async () => {
    const x = makeCase(8, 40, 16, 3000, 5);
    expect(await run(x, false)).toEqual(await run(x, false));
  });

  it("rethrows what lossGrad throws, and refuses a wrong answer or bad ids", async () => {
    const x = makeCase(4, 20, 8, 300, 9);
    await expect(run(x, false, { grad: () => { throw new RangeError("the loss is broken"); } })).rejects.toThrow("the loss is broken");
    await expect(run(x, false, { grad: () => [1] })).rejects.toThrow(/lossGrad must return \d+ numbers/);
    await expect(run(x, false, { grad: (s) => Array.from(s, () => "x" as unknown as number) })).rejects.toThrow(/non-number/);
    await expect(run({ ...x, segment: x.segment.map((s) => (s === 3 ? 9 : s)) }, false)).rejects.toThrow(/segment\[\d+\] = 9 is outside \[-1, 8\)/);
    await expect(run({ ...x, groupOf: Int32Array.of(0, 1, 2, 3, 0, 1, 2, -1) }, false)).rejects.toThrow(/groupOf\[7\] = -1/);
  });

  it("host API: kernels.linearSequenceLoss gives the backend op's results and each segment's sum", async () => {
    const x = makeCase(3, 20, 8, 500, 41);
    const want = await run(x, false);
    const got = await kernels.linearSequenceLoss(x.hidden, x.weight, x.targets, x.segment, x.groupOf, pairLossGrad(x.P, [], 4), { N: x.N, H: x.H, V: x.V, temperature: 0.8 }, x.dwInit.slice());
    for (const k of ["dhidden", "dweight", "logprob", "entropy"] as const) expect(got[k]).toEqual(want[({ dhidden: "dh", dweight: "dw", logprob: "lp", entropy: "ent" } as const)[k]]);
    want.calls.forEach((c) => c.segs.forEach((q, j) => expect(got.sums[q]).toBe(c.sums[j])));
    await expect(kernels.linearSequenceLoss(x.hidden, x.weight, x.targets, x.segment, x.groupOf, () => { throw new Error("no"); }, { N: x.N, H: x.H, V: x.V })).rejects.toThrow("no");
  });
});
