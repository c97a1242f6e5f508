// WebGPU backend: every op against a naive float64 TS reference (odd shapes), the float64
// backward references against finite differences, and the binding-limit splitting paths
// (a second backend with a tiny maxBindingBytes runs the same ops in chunks).
import { afterAll, describe, expect, it } from "vitest";
import type { Tensor } from "../src/backend/backend.js";
import { WebGpuBackend, sampleUniform } from "../src/backend/webgpu/index.js";
import { bufferBytes as bufferBytesOf } from "../src/backend/webgpu/tensor.js";
import { roundToBf16 } from "../src/backend/bf16.js";
import * as ref from "./helpers/reference-ops.js";

let gpu: WebGpuBackend | null = null;
let small: WebGpuBackend | null = null;
let reason = "";
try {
  gpu = await WebGpuBackend.create();
  small = await WebGpuBackend.create({ maxBindingBytes: 64 * 1024 });
} catch (e) {
  reason = (e as Error).message;
  console.warn(`webgpu tests skipped: ${reason}`);
}

afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

const TOL = 2e-5;

describe.skipIf(!gpu)("webgpu backend", () => {
  const g = () => gpu!;
  const up = (be: WebGpuBackend, d: Float32Array | Int32Array, shape: number[]) => be.upload(d, shape);
  const rd = async (be: WebGpuBackend, t: Tensor) => Array.from(await be.read(t));

  it("describes the adapter", () => {
    const d = g().describe();
    expect(d.backend).toBe("webgpu");
    expect(d.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it("memory: upload, read, write, copy (overlapping too), fill, zeros", async () => {
    const be = g();
    const a = up(be, ref.rand(37, 1), [37]);
    expect(await rd(be, a)).toEqual(Array.from(ref.rand(37, 1)));
    be.write(a, new Float32Array([7, 8, 9]), 5);
    const b = be.zeros([41]);
    be.copy(b, a, 3, 4, 10);
    const want = new Array(41).fill(0);
    const av = Array.from(ref.rand(37, 1));
    av.splice(5, 3, 7, 8, 9);
    for (let i = 0; i < 10; i++) want[3 + i] = av[4 + i];
    expect(await rd(be, b)).toEqual(want.map((x) => Math.fround(x)));
    be.copy(b, b, 5, 3, 10); // overlapping
    const w2 = want.slice();
    for (let i = 0; i < 10; i++) w2[5 + i] = want[3 + i];
    expect(await rd(be, b)).toEqual(w2.map((x) => Math.fround(x)));
    const ii = be.zeros([5], "i32");
    be.fill(ii, -3);
    expect(await rd(be, ii)).toEqual([-3, -3, -3, -3, -3]);
    be.fill(b, 0.5);
    expect((await rd(be, b)).every((x) => x === 0.5)).toBe(true);
    a.dispose();
    expect(() => be.fill(a, 1)).toThrow(/disposed/);
    expect(await rd(be, be.zeros([0]))).toEqual([]);
  });

  it("bf16 tensors: packed two per word, memory ops in whole pairs", async () => {
    const be = g();
    const x = ref.rand(37, 4);
    const t = be.upload(x, [37], "bf16");
    expect(t.dtype).toBe("bf16");
    expect(t.bytes).toBe(bufferBytesOf(19));
    expect(await rd(be, t)).toEqual(Array.from(roundToBf16(x)));
    be.write(t, new Float32Array([1.5, -2]), 4);
    expect((await rd(be, t)).slice(3, 7)).toEqual([roundToBf16(x)[3], 1.5, -2, roundToBf16(x)[6]]);
    expect(() => be.write(t, new Float32Array([1]), 3)).toThrow(RangeError);
    const u = be.zeros([37], "bf16");
    be.copy(u, t, 0, 0);
    expect(await rd(be, u)).toEqual(await rd(be, t));
    be.fill(u, 0.75);
    expect((await rd(be, u)).every((v) => v === 0.75)).toBe(true);
    expect(() => be.scale(u, 2)).toThrow(TypeError); // bf16 is weight storage only
  });

  for (const be of [() => gpu!, () => small!]) {
    const label = () => (be() === small ? " (split bindings)" : "");

    it(`bf16 weights give the f32 results on bf16-rounded values: matmul, embedding, linear log-prob${label()}`, async () => {
      const B = be();
      const same = async (a: Tensor, b: Tensor) => expect(ref.nerr(await rd(B, a), await rd(B, b))).toBeLessThan(1e-6);
      for (const [M, N, K] of [[37, 53, 29], [3, 70, 33], [70, 150, 130]]) {
        const x = up(B, ref.rand(M * K, 5), [M, K]);
        for (const transB of [true, false]) {
          const w = ref.rand(K * N, 6);
          const shape = transB ? [N, K] : [K, N];
          const [o16, o32] = [B.upload(ref.rand(M * N, 7), [M, N]), B.upload(ref.rand(M * N, 7), [M, N])];
          B.matmul(o16, x, B.upload(w, shape, "bf16"), { transB, accumulate: true, alpha: 0.5 });
          B.matmul(o32, x, up(B, roundToBf16(w), shape), { transB, accumulate: true, alpha: 0.5 });
          await same(o16, o32);
        }
      }
      const [V, C, N] = [300, 60, 23];
      const table = ref.rand(V * C, 8);
      const ids = up(B, ref.randInt(N, 9, 0, V), [N]);
      const [e16, e32] = [B.zeros([N, C]), B.zeros([N, C])];
      B.embeddingForward(e16, ids, B.upload(table, [V, C], "bf16"));
      B.embeddingForward(e32, ids, up(B, roundToBf16(table), [V, C]));
      await same(e16, e32);
      const [Nl, H, Vl] = [19, 24, 900];
      const hidden = up(B, ref.rand(Nl * H, 10), [Nl, H]);
      const wl = ref.rand(Vl * H, 11, -0.3, 0.3);
      const tg = up(B, ref.randInt(Nl, 12, 0, Vl), [Nl]);
      const run = async (w: Tensor) => {
        const [lp, ent, lse, dh] = [B.zeros([Nl]), B.zeros([Nl]), B.zeros([Nl]), B.zeros([Nl, H])];
        B.linearLogprobForward(lp, ent, lse, hidden, w, tg, 0.9);
        B.linearLogprobBackward(dh, null, up(B, ref.rand(Nl, 13), [Nl]), up(B, ref.rand(Nl, 14), [Nl]), hidden, w, tg, lse, ent, 0.9);
        return [lp, ent, dh];
      };
      const [r16, r32] = [await run(B.upload(wl, [Vl, H], "bf16")), await run(up(B, roundToBf16(wl), [Vl, H]))];
      for (let i = 0; i < 3; i++) await same(r16[i], r32[i]);
    });

    it("elementwise: add (with aliasing), accumulate, scale, sumSquares", async () => {
      const B = be();
      const n = 40_003;
      const x = ref.rand(n, 2), y = ref.rand(n, 3);
      const tx = up(B, x, [n]), ty = up(B, y, [n]), out = B.zeros([n]);
      B.add(out, tx, ty);
      expect(ref.nerr(await rd(B, out), Array.from(x, (v, i) => v + y[i]))).toBeLessThan(1e-7);
      B.add(out, out, tx); // out aliases a
      expect(ref.nerr(await rd(B, out), Array.from(x, (v, i) => 2 * v + y[i]))).toBeLessThan(1e-6);
      B.accumulate(tx, ty, -0.5);
      B.scale(tx, 3);
      expect(ref.nerr(await rd(B, tx), Array.from(x, (v, i) => 3 * (v - 0.5 * y[i])))).toBeLessThan(1e-6);
      const ss = up(B, new Float32Array([1.5]), [1]);
      B.sumSquares(ss, ty);
      expect(ref.nerr(await rd(B, ss), [1.5 + y.reduce((s, v) => s + v * v, 0)])).toBeLessThan(1e-5);
    });

    it(`matmul: all transposes, accumulate, alpha, odd shapes${label()}`, async () => {
      const B = be();
      for (const [M, N, K] of [[37, 53, 29], [130, 70, 200], [1, 5, 3], [3, 200, 130], [8, 77, 65], [13, 40, 300], [32, 9, 70]]) {
        for (const transA of [false, true])
          for (const transB of [false, true]) {
            const a = ref.rand(M * K, M + K), b = ref.rand(K * N, N * 7 + K), init = ref.rand(M * N, 5);
            const ta = up(B, a, transA ? [K, M] : [M, K]), tb = up(B, b, transB ? [N, K] : [K, N]);
            const out = up(B, init, [M, N]);
            const accumulate = M % 2 === 1;
            B.matmul(out, ta, tb, { transA, transB, accumulate, alpha: 0.75 });
            const want = ref.matmul(a, b, M, N, K, transA, transB, 0.75, accumulate ? init : undefined);
            expect(ref.nerr(await rd(B, out), want), `M${M} N${N} K${K} tA${transA} tB${transB}`).toBeLessThan(TOL);
          }
      }
    });

    it(`embedding forward/backward (repeated ids), gatherRows${label()}`, async () => {
      const B = be();
      const V = 301, C = 67, N = 45;
      const table = ref.rand(V * C, 11);
      const ids = ref.randInt(N, 12, 0, V);
      ids[3] = ids[7] = ids[40] = 5; // repeats
      ids[10] = V - 1;
      const tt = up(B, table, [V, C]), ti = up(B, ids, [N]);
      const out = B.zeros([N, C]);
      B.embeddingForward(out, ti, tt);
      const want = new Float64Array(N * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) want[n * C + c] = table[ids[n] * C + c];
      expect(ref.nerr(await rd(B, out), want)).toBe(0);
      const out2 = B.zeros([N, C]);
      B.gatherRows(out2, tt, ti);
      expect(ref.nerr(await rd(B, out2), want)).toBe(0);
      const dout = ref.rand(N * C, 13);
      const init = ref.rand(V * C, 14);
      const dt = up(B, init, [V, C]);
      B.embeddingBackward(dt, up(B, dout, [N, C]), ti);
      const dwant = Float64Array.from(init);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) dwant[ids[n] * C + c] += dout[n * C + c];
      expect(ref.nerr(await rd(B, dt), dwant)).toBeLessThan(1e-6);
    });

    it(`crossEntropy and logprobFromLogits (ignored targets)${label()}`, async () => {
      const B = be();
      const N = 77, V = B === small ? 203 : 1037;
      const logits = ref.rand(N * V, 21, -6, 6);
      const targets = ref.randInt(N, 22, 0, V);
      targets[4] = -1;
      targets[70] = -100;
      const tl = up(B, logits, [N, V]), tt = up(B, targets, [N]);
      const loss = B.zeros([N]);
      B.crossEntropyForward(loss, tl, tt);
      const r = ref.logprobFromLogits(logits, targets, N, V, 1);
      expect(ref.nerr(await rd(B, loss), Array.from(r.lp, (x) => -x))).toBeLessThan(TOL);
      const dloss = ref.rand(N, 23);
      const dl = B.zeros([N, V]);
      B.crossEntropyBackward(dl, up(B, dloss, [N]), tl, tt);
      const gwant = ref.logprobBackward(logits, targets, Array.from(dloss, (x) => -x), new Float64Array(N), N, V, 1);
      expect(ref.nerr(await rd(B, dl), gwant)).toBeLessThan(TOL);
      const lp = B.zeros([N]), ent = B.zeros([N]);
      B.logprobFromLogits(lp, ent, tl, tt, 0.7);
      const r2 = ref.logprobFromLogits(logits, targets, N, V, 0.7);
      expect(ref.nerr(await rd(B, lp), r2.lp)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, ent), r2.ent)).toBeLessThan(TOL);
    });

    it(`rmsnorm forward/backward${label()}`, async () => {
      const B = be();
      const N = 300, C = B === small ? 80 : 77, eps = 1e-6;
      const x = ref.rand(N * C, 31), w = ref.rand(C, 32, 0.5, 1.5), dout = ref.rand(N * C, 33);
      const tx = up(B, x, [N, C]), tw = up(B, w, [C]);
      const out = B.zeros([N, C]), rstd = B.zeros([N]);
      B.rmsnormForward(out, rstd, tx, tw, eps);
      const r = ref.rmsnorm(x, w, N, C, eps);
      expect(ref.nerr(await rd(B, out), r.out)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, rstd), r.rstd)).toBeLessThan(TOL);
      const dinp = B.zeros([N, C]), dw = up(B, new Float32Array(C).fill(0.25), [C]);
      B.rmsnormBackward(dinp, dw, up(B, dout, [N, C]), tx, tw, rstd);
      const rb = ref.rmsnormBackward(dout, x, w, N, C, eps);
      expect(ref.nerr(await rd(B, dinp), rb.dinp)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, dw), Array.from(rb.dw, (v) => v + 0.25))).toBeLessThan(TOL);
    });

    it(`biasAdd / biasBackward, swiglu, adamw${label()}`, async () => {
      const B = be();
      const N = 301, C = 67;
      const o = ref.rand(N * C, 41), bias = ref.rand(C, 42);
      const to = up(B, o, [N, C]);
      B.biasAdd(to, up(B, bias, [C]));
      expect(ref.nerr(await rd(B, to), Array.from(o, (v, i) => v + bias[i % C]))).toBeLessThan(1e-7);
      const db = up(B, bias, [C]);
      B.biasBackward(db, up(B, o, [N, C]));
      const want = Array.from(bias, (v) => v);
      for (let i = 0; i < N * C; i++) want[i % C] += o[i];
      expect(ref.nerr(await rd(B, db), want)).toBeLessThan(TOL);

      const n = 20_011;
      const gate = ref.rand(n, 43, -8, 8), upv = ref.rand(n, 44), dout = ref.rand(n, 45);
      const tg = up(B, gate, [n]), tu = up(B, upv, [n]);
      const out = B.zeros([n]);
      B.swigluForward(out, tg, tu);
      const sig = (x: number) => 1 / (1 + Math.exp(-x));
      expect(ref.nerr(await rd(B, out), Array.from(gate, (x, i) => x * sig(x) * upv[i]))).toBeLessThan(TOL);
      const dg = B.zeros([n]), du = B.zeros([n]);
      B.swigluBackward(dg, du, up(B, dout, [n]), tg, tu);
      expect(ref.nerr(await rd(B, dg), Array.from(gate, (x, i) => dout[i] * upv[i] * sig(x) * (1 + x * (1 - sig(x)))))).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, du), Array.from(gate, (x, i) => dout[i] * x * sig(x)))).toBeLessThan(TOL);

      const p = ref.rand(n, 46), gr = ref.rand(n, 47), m = ref.rand(n, 48, -0.1, 0.1), v = ref.rand(n, 49, 0, 0.01);
      const tp = up(B, p, [n]), tm = up(B, m, [n]), tv = up(B, v, [n]);
      const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 7 };
      B.adamw(tp, up(B, gr, [n]), tm, tv, opts);
      const bc1 = 1 - 0.9 ** 7, bc2 = 1 - 0.999 ** 7;
      const pw = new Float64Array(n), mw = new Float64Array(n), vw = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        mw[i] = 0.9 * m[i] + 0.1 * gr[i];
        vw[i] = 0.999 * v[i] + 0.001 * gr[i] ** 2;
        pw[i] = p[i] * (1 - 1e-4) - (1e-3 / bc1) * (mw[i] / (Math.sqrt(vw[i]) / Math.sqrt(bc2) + 1e-8));
      }
      expect(ref.nerr(await rd(B, tp), pw)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, tm), mw)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, tv), vw)).toBeLessThan(TOL);
    });

    it(`attention forward/backward and KV-cache decode over batch chunks${label()}`, async () => {
      const gb = be();
      // With 64 KiB bindings these shapes split over the batch, at offsets that are not 256-byte aligned.
      const [Bn, T, nh, nkv, hd] = [7, 45, 4, 2, 16];
      const q = ref.rand(Bn * T * nh * hd, 121), k = ref.rand(Bn * T * nkv * hd, 122), v = ref.rand(Bn * T * nkv * hd, 123);
      const tq = up(gb, q, [Bn, T, nh, hd]), tk = up(gb, k, [Bn, T, nkv, hd]), tv = up(gb, v, [Bn, T, nkv, hd]);
      const out = gb.zeros([Bn, T, nh, hd]), lse = gb.zeros([Bn, nh, T]);
      gb.attentionForward(out, lse, tq, tk, tv);
      const r = ref.attention(q, k, v, Bn, T, nh, nkv, hd);
      expect(ref.nerr(await gb.read(out), r.out)).toBeLessThan(TOL);
      expect(ref.nerr(await gb.read(lse), r.lse)).toBeLessThan(TOL);
      const dout = ref.rand(q.length, 124);
      const dq = gb.zeros([Bn, T, nh, hd]), dk = gb.zeros([Bn, T, nkv, hd]), dv = gb.zeros([Bn, T, nkv, hd]);
      gb.attentionBackward(dq, dk, dv, up(gb, dout, [Bn, T, nh, hd]), tq, tk, tv, out, lse);
      const rb = ref.attentionBackward(dout, q, k, v, Bn, T, nh, nkv, hd);
      expect(ref.nerr(await gb.read(dq), rb.dq)).toBeLessThan(TOL);
      expect(ref.nerr(await gb.read(dk), rb.dk)).toBeLessThan(TOL);
      expect(ref.nerr(await gb.read(dv), rb.dv)).toBeLessThan(TOL);

      const [Bd, S, Tq, hdd] = [5, 300, 2, 9];
      const kc = ref.rand(Bd * S * nkv * hdd, 125), vc = ref.rand(Bd * S * nkv * hdd, 126), x = ref.rand(Bd * Tq * nkv * hdd, 127);
      const pos = new Int32Array([0, 297, 5, 150, 33]);
      const tkc = up(gb, kc, [Bd, S, nkv, hdd]), tp = up(gb, pos, [Bd]);
      gb.kvWrite(tkc, up(gb, x, [Bd, Tq, nkv, hdd]), tp);
      const kw = Float32Array.from(kc);
      for (let b = 0; b < Bd; b++) for (let t = 0; t < Tq; t++) for (let e = 0; e < nkv * hdd; e++) kw[(b * S + pos[b] + t) * nkv * hdd + e] = x[(b * Tq + t) * nkv * hdd + e];
      expect(Array.from(await gb.read(tkc))).toEqual(Array.from(kw));
      const qd = ref.rand(Bd * Tq * nh * hdd, 128), od = gb.zeros([Bd, Tq, nh, hdd]);
      gb.attentionDecode(od, up(gb, qd, [Bd, Tq, nh, hdd]), tkc, up(gb, vc, [Bd, S, nkv, hdd]), tp);
      expect(ref.nerr(await gb.read(od), ref.attentionDecode(qd, kw, vc, pos, Bd, Tq, S, nh, nkv, hdd))).toBeLessThan(TOL);
    });

    it(`linearLogprob forward/backward (vocab chunks)${label()}`, async () => {
      const B = be();
      const N = 19, H = 40, V = 1100, T = 0.8;
      const hid = ref.rand(N * H, 51), W = ref.rand(V * H, 52, -0.5, 0.5);
      const targets = ref.randInt(N, 53, 0, V);
      targets[2] = -1;
      const th = up(B, hid, [N, H]), tw = up(B, W, [V, H]), tt = up(B, targets, [N]);
      const lp = B.zeros([N]), ent = B.zeros([N]), lse = B.zeros([N]);
      B.linearLogprobForward(lp, ent, lse, th, tw, tt, T);
      const logits = ref.matmul(hid, W, N, V, H, false, true);
      const r = ref.logprobFromLogits(logits, targets, N, V, T);
      expect(ref.nerr(await rd(B, lp), r.lp)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, ent), r.ent)).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, lse), r.lse)).toBeLessThan(TOL);
      const dlp = ref.rand(N, 54), dent = ref.rand(N, 55);
      const dh = B.zeros([N, H]), dwInit = ref.rand(V * H, 56), dw = up(B, dwInit, [V, H]);
      B.linearLogprobBackward(dh, dw, up(B, dlp, [N]), up(B, dent, [N]), th, tw, tt, lse, ent, T);
      const dz = ref.logprobBackward(logits, targets, dlp, dent, N, V, T);
      expect(ref.nerr(await rd(B, dh), ref.matmul(dz, W, N, H, V, false, false))).toBeLessThan(TOL);
      expect(ref.nerr(await rd(B, dw), ref.matmul(dz, hid, V, H, N, true, false, 1, dwInit))).toBeLessThan(TOL);
    });
  }

  it("rope forward/backward, in place, positions past the table", async () => {
    const be = await WebGpuBackend.create({ ropeTablePositions: 64 });
    try {
      const N = 13, nh = 3, hd = 10, theta = 10000;
      const x = ref.rand(N * nh * hd, 61);
      const pos = ref.randInt(N, 62, 0, 60);
      pos[5] = 100; // beyond the 64-entry table: float32 fallback
      const tx = be.upload(x, [N, nh, hd]), tp = be.upload(pos, [N]);
      const out = be.zeros([N, nh, hd]);
      be.ropeForward(out, tx, tp, theta);
      expect(ref.nerr(await be.read(out), ref.rope(x, pos, N, nh, hd, theta))).toBeLessThan(1e-5);
      be.ropeBackward(out, out, tp, theta); // in place: inverse rotation gives x back
      expect(ref.nerr(await be.read(out), x)).toBeLessThan(1e-5);
      // the backward is the transpose of the forward: <R x, y> = <x, R^T y>
      const y = ref.rand(N * nh * hd, 63);
      const ty = be.upload(y, [N, nh, hd]), dx = be.zeros([N, nh, hd]);
      be.ropeBackward(dx, ty, tp, theta);
      const rx = ref.rope(x, pos, N, nh, hd, theta);
      expect(Math.abs(ref.dot(rx, y) - ref.dot(x, await be.read(dx)))).toBeLessThan(1e-4);
    } finally {
      be.destroy();
    }
  });

  it("attention forward/backward, causal GQA (odd T, hd)", async () => {
    const be = g();
    for (const [B, T, nh, nkv, hd] of [[2, 13, 4, 2, 9], [1, 70, 3, 1, 16]]) {
      const q = ref.rand(B * T * nh * hd, 71), k = ref.rand(B * T * nkv * hd, 72), v = ref.rand(B * T * nkv * hd, 73);
      const tq = be.upload(q, [B, T, nh, hd]), tk = be.upload(k, [B, T, nkv, hd]), tv = be.upload(v, [B, T, nkv, hd]);
      const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]);
      be.attentionForward(out, lse, tq, tk, tv);
      const r = ref.attention(q, k, v, B, T, nh, nkv, hd);
      expect(ref.nerr(await be.read(out), r.out)).toBeLessThan(TOL);
      expect(ref.nerr(await be.read(lse), r.lse)).toBeLessThan(TOL);
      const dout = ref.rand(q.length, 74);
      const dq = be.zeros(q.length ? [B, T, nh, hd] : [0]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
      be.attentionBackward(dq, dk, dv, be.upload(dout, [B, T, nh, hd]), tq, tk, tv, out, lse);
      const rb = ref.attentionBackward(dout, q, k, v, B, T, nh, nkv, hd);
      expect(ref.nerr(await be.read(dq), rb.dq)).toBeLessThan(TOL);
      expect(ref.nerr(await be.read(dk), rb.dk)).toBeLessThan(TOL);
      expect(ref.nerr(await be.read(dv), rb.dv)).toBeLessThan(TOL);
    }
  });

  it("kvWrite + attentionDecode (prefill and decode rows)", async () => {
    const be = g();
    const B = 3, S = 50, nh = 4, nkv = 2, hd = 9, Tq = 3;
    const kc = ref.rand(B * S * nkv * hd, 81), vc = ref.rand(B * S * nkv * hd, 82);
    const tk = be.upload(kc, [B, S, nkv, hd]), tv = be.upload(vc, [B, S, nkv, hd]);
    const pos = new Int32Array([0, 17, 46]);
    const x = ref.rand(B * Tq * nkv * hd, 83);
    be.kvWrite(tk, be.upload(x, [B, Tq, nkv, hd]), be.upload(pos, [B]));
    const kw = Float32Array.from(kc);
    for (let b = 0; b < B; b++) for (let t = 0; t < Tq; t++) for (let e = 0; e < nkv * hd; e++) kw[((b * S + pos[b] + t) * nkv) * hd + e] = x[((b * Tq + t) * nkv) * hd + e];
    expect(Array.from(await be.read(tk))).toEqual(Array.from(kw));
    const q = ref.rand(B * Tq * nh * hd, 84);
    const out = be.zeros([B, Tq, nh, hd]);
    be.attentionDecode(out, be.upload(q, [B, Tq, nh, hd]), tk, tv, be.upload(pos, [B]));
    expect(ref.nerr(await be.read(out), ref.attentionDecode(q, kw, vc, pos, B, Tq, S, nh, nkv, hd))).toBeLessThan(TOL);
  });

  it("sample: greedy, top-k / top-p / min-p draws match the reference for the same seeds", async () => {
    const be = g();
    const B = 24, V = 1001;
    const logits = ref.rand(B * V, 91, -4, 4);
    for (let i = 0; i < V; i += 7) logits[5 * V + i] = logits[5 * V]; // ties
    logits[7 * V + 3] = -Infinity;
    const tl = be.upload(logits, [B, V]), ids = be.zeros([B], "i32");
    const seeds = Uint32Array.from({ length: B }, (_, i) => 1000 + i * 7919);
    const cases = [
      { temperature: 0, topK: 0, topP: 1, minP: 0 },
      { temperature: 1, topK: 0, topP: 1, minP: 0, greedy: true },
      { temperature: 1, topK: 0, topP: 1, minP: 0 },
      { temperature: 0.7, topK: 50, topP: 1, minP: 0 },
      { temperature: 1.3, topK: 0, topP: 0.9, minP: 0 },
      { temperature: 0.9, topK: 200, topP: 0.8, minP: 0.05 },
      { temperature: 1, topK: 1, topP: 1, minP: 0 },
    ];
    for (const o of cases) {
      be.sample(ids, tl, seeds, o);
      const got = Array.from(await be.read(ids));
      const want = Array.from({ length: B }, (_, b) => ref.sampleRow(logits.subarray(b * V, (b + 1) * V), sampleUniform(seeds[b]), o));
      expect(got, JSON.stringify(o)).toEqual(want);
    }
    const bad = be.upload(new Float32Array([1, NaN, 2, 0, -Infinity, -Infinity]), [3, 2]);
    const bid = be.zeros([3], "i32");
    be.sample(bid, bad, new Uint32Array(3), { temperature: 1, topK: 0, topP: 1, minP: 0 });
    const bids = Array.from(await be.read(bid));
    expect([bids[0], bids[2]]).toEqual([-1, -1]); // NaN row, all -inf row
    expect([0, 1]).toContain(bids[1]);
  });

  it("sample: draws follow the truncated distribution (chi-square)", async () => {
    const be = g();
    const V = 24, R = 2048;
    const row = ref.rand(V, 92, -2, 2);
    const logits = new Float32Array(R * V);
    for (let r = 0; r < R; r++) logits.set(row, r * V);
    const o = { temperature: 0.8, topK: 12, topP: 0.9, minP: 0.05 };
    const ids = be.zeros([R], "i32");
    be.sample(ids, be.upload(logits, [R, V]), Uint32Array.from({ length: R }, (_, i) => i * 2654435761), o);
    const got = await be.read(ids);
    const w = ref.sampleWeights(row, o);
    const mass = w.reduce((s, v) => s + v, 0);
    const counts = new Array(V).fill(0);
    for (const id of got) counts[id]++;
    let chi2 = 0, df = -1;
    for (let v = 0; v < V; v++) {
      if (w[v] === 0) {
        expect(counts[v], `token ${v} is outside the kept set`).toBe(0);
        continue;
      }
      const e = (R * w[v]) / mass;
      chi2 += (counts[v] - e) ** 2 / e;
      df++;
    }
    // 99.9th percentile of chi-square with df <= 11 is < 32
    expect(df).toBeGreaterThan(2);
    expect(chi2).toBeLessThan(32);
  });

  it("grpoLoss: every aggregation, KL estimator, clips, TIS and entropy bonus", async () => {
    const be = g();
    const Bn = 5, T = 37, N = Bn * T;
    const lp = ref.rand(N, 101, -3, -0.1), old = Float32Array.from(lp, (v, i) => v + ref.rand(N, 102, -0.5, 0.5)[i]);
    const refLp = Float32Array.from(lp, (v, i) => v + ref.rand(N, 103, -0.3, 0.3)[i]);
    const roll = Float32Array.from(old, (v, i) => v + ref.rand(N, 104, -0.4, 0.4)[i]);
    const ent = ref.rand(N, 105, 0, 3), adv = new Float32Array([1.2, -0.7, 0, -2, 0.4]);
    const mask = Float32Array.from(ref.rand(N, 106, 0, 1), (v) => (v < 0.8 ? 1 : 0));
    for (let t = 0; t < T; t++) mask[3 * T + t] = 0; // one empty sequence
    const t = (a: Float32Array) => be.upload(a, [Bn, T]);
    const [tlp, told, tref, troll, tent, tmask] = [t(lp), t(old), t(refLp), t(roll), t(ent), t(mask)];
    const tadv = be.upload(adv, [Bn]);
    const dlp = be.zeros([N]), dent = be.zeros([N]), stats = be.zeros([11]);
    const base = { B: Bn, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 0, beta: 0, kl: "k3" as const, entropyCoef: 0, tisCap: 0, aggregation: "token-mean" as const };
    const cases: ref.GrpoRefOptions[] = [
      base,
      { ...base, aggregation: "seq-mean-token-mean", beta: 0.04, kl: "k1" },
      { ...base, aggregation: "seq-mean-token-sum", beta: 0.1, kl: "k2", dualClip: 3 },
      { ...base, aggregation: "dr-grpo", maxCompletionLength: 50, beta: 0.02, kl: "k3", entropyCoef: 0.01, tisCap: 2, dualClip: 1.5 },
    ];
    for (const o of cases) {
      const useRef = o.beta !== 0, useRoll = o.tisCap !== 0, useEnt = o.entropyCoef !== 0;
      be.grpoLoss(dlp, dent, stats, tlp, told, useRef ? tref : null, useRoll ? troll : null, useEnt ? tent : null, tadv, tmask, o);
      const r = ref.grpoLoss(lp, old, useRef ? refLp : null, useRoll ? roll : null, useEnt ? ent : null, adv, mask, o);
      expect(ref.nerr(await be.read(dlp), r.dlp), o.aggregation).toBeLessThan(TOL);
      expect(ref.nerr(await be.read(dent), r.dent), o.aggregation).toBeLessThan(TOL);
      expect(ref.nerr(await be.read(stats), r.stats), o.aggregation).toBeLessThan(1e-5);
    }
  });

  it("targets >= V give NaN (kernels cannot throw), ids out of range give zero rows", async () => {
    const be = g();
    const N = 3, V = 5, H = 4;
    const logits = be.upload(ref.rand(N * V, 111), [N, V]), targets = be.upload(new Int32Array([1, 5, 99]), [N]);
    const loss = be.zeros([N]);
    be.crossEntropyForward(loss, logits, targets);
    const lp = be.zeros([N]), ent = be.zeros([N]), lse = be.zeros([N]);
    be.logprobFromLogits(lp, ent, logits, targets, 1);
    const lp2 = be.zeros([N]);
    be.linearLogprobForward(lp2, ent, lse, be.upload(ref.rand(N * H, 112), [N, H]), be.upload(ref.rand(V * H, 113), [V, H]), targets, 1);
    for (const t of [loss, lp, lp2]) {
      const r = await be.read(t);
      expect(Number.isFinite(r[0])).toBe(true);
      expect([Number.isNaN(r[1]), Number.isNaN(r[2])]).toEqual([true, true]);
    }
    const out = be.zeros([2, 3]);
    be.embeddingForward(out, be.upload(new Int32Array([1, 7]), [2]), be.upload(ref.rand(6, 114), [2, 3]));
    expect(Array.from(await be.read(out)).slice(3)).toEqual([0, 0, 0]);
  });

  it("rejects bad arguments with clear errors", () => {
    const be = g();
    expect(() => be.matmul(be.zeros([3, 4]), be.zeros([3, 5]), be.zeros([4, 4]))).toThrow(/shapes do not agree/);
    expect(() => be.add(be.zeros([3]), be.zeros([4]), be.zeros([3]))).toThrow(/expected 3/);
    expect(() => be.embeddingForward(be.zeros([2, 3]), be.zeros([2]), be.zeros([5, 3]))).toThrow(/must be i32/);
  });
});

describe("float64 backward references agree with finite differences", () => {
  it("rmsnorm, attention, linear logprob + entropy, swiglu, grpo loss", () => {
    // rmsnorm
    const N = 3, C = 5, eps = 1e-5;
    const x = Float64Array.from(ref.rand(N * C, 1)), w = Float64Array.from(ref.rand(C, 2)), dout = ref.rand(N * C, 3);
    const rb = ref.rmsnormBackward(dout, x, w, N, C, eps);
    const fx = (xx: Float64Array) => ref.dot(ref.rmsnorm(xx, w, N, C, eps).out, dout);
    const fw = (ww: Float64Array) => ref.dot(ref.rmsnorm(x, ww, N, C, eps).out, dout);
    expect(ref.nerr(ref.fdGrad(fx, x, [0, 7, 14]), [rb.dinp[0], rb.dinp[7], rb.dinp[14]])).toBeLessThan(1e-6);
    expect(ref.nerr(ref.fdGrad(fw, w, [0, 4]), [rb.dw[0], rb.dw[4]])).toBeLessThan(1e-6);
    // attention (GQA)
    const [B, T, nh, nkv, hd] = [1, 4, 4, 2, 3];
    const q = Float64Array.from(ref.rand(B * T * nh * hd, 4)), k = Float64Array.from(ref.rand(B * T * nkv * hd, 5)), v = Float64Array.from(ref.rand(B * T * nkv * hd, 6));
    const go = ref.rand(q.length, 7);
    const ab = ref.attentionBackward(go, q, k, v, B, T, nh, nkv, hd);
    const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => ref.dot(ref.attention(qq, kk, vv, B, T, nh, nkv, hd).out, go);
    expect(ref.nerr(ref.fdGrad((z) => loss(z, k, v), q, [0, 20, 47]), [ab.dq[0], ab.dq[20], ab.dq[47]])).toBeLessThan(1e-6);
    expect(ref.nerr(ref.fdGrad((z) => loss(q, z, v), k, [0, 13, 23]), [ab.dk[0], ab.dk[13], ab.dk[23]])).toBeLessThan(1e-6);
    expect(ref.nerr(ref.fdGrad((z) => loss(q, k, z), v, [1, 12, 22]), [ab.dv[1], ab.dv[12], ab.dv[22]])).toBeLessThan(1e-6);
    // log-prob + entropy wrt logits
    const Nl = 2, V = 7, Tm = 0.7;
    const z = Float64Array.from(ref.rand(Nl * V, 8, -2, 2)), tg = [3, 6], dlp = [0.3, -1.2], dent = [0.7, 0.4];
    const gb = ref.logprobBackward(z, tg, dlp, dent, Nl, V, Tm);
    const fl = (zz: Float64Array) => {
      const r = ref.logprobFromLogits(zz, tg, Nl, V, Tm);
      return ref.dot(r.lp, dlp) + ref.dot(r.ent, dent);
    };
    expect(ref.nerr(ref.fdGrad(fl, z, [0, 3, 9, 13]), [gb[0], gb[3], gb[9], gb[13]])).toBeLessThan(1e-6);
    // swiglu: d/dgate of silu(g) * u
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const gs = Float64Array.from([-3.5, -0.2, 0.7, 4.1]), us = [0.3, -1.2, 2, 0.5];
    const fsw = (gg: Float64Array) => gg.reduce((acc, x, i) => acc + x * sig(x) * us[i], 0);
    expect(ref.nerr(ref.fdGrad(fsw, gs, [0, 1, 2, 3]), Array.from(gs, (x, i) => us[i] * sig(x) * (1 + x * (1 - sig(x)))))).toBeLessThan(1e-6);
    // GRPO loss wrt logprob (away from clip boundaries)
    const o: ref.GrpoRefOptions = { B: 2, T: 3, epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0.1, kl: "k3", entropyCoef: 0, tisCap: 2, aggregation: "seq-mean-token-mean" };
    const glp = Float64Array.from([-1, -2, -0.5, -1.5, -0.3, -2.2]), gold = [-1.1, -1.5, -0.5, -1.4, -0.9, -2.0], gref = [-1, -1, -1, -1, -1, -1];
    const groll = [-1, -1.4, -0.6, -1.4, -0.8, -2], gadv = [0.8, -1.1], gmask = [1, 1, 0, 1, 1, 1];
    const rg = ref.grpoLoss(glp, gold, gref, groll, null, gadv, gmask, o);
    const fg = (x: Float64Array) => ref.grpoLoss(x, gold, gref, groll, null, gadv, gmask, o).stats[0];
    expect(ref.nerr(ref.fdGrad(fg, glp, [0, 1, 3, 4, 5]), [0, 1, 3, 4, 5].map((i) => rg.dlp[i]))).toBeLessThan(1e-6);
  });
});
