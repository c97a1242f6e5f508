// RoPE, causal GQA attention (forward, backward), the KV cache (kvWrite + attentionDecode):
// the CPU backend against naive float64 references; gradients by central finite differences
// of the float64 reference forward.
import { beforeAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../src/backend/cpu.js";
import { mulberry32 } from "../src/util/rng.js";
import { attentionAt, dot, fdGrad, rope } from "./helpers/reference-ops.js";

let be: CpuBackend;
beforeAll(() => {
  be = new CpuBackend();
});

/** Deterministic uniform(-1, 1) values (mulberry32), exactly representable in float32. */
function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Asserts |got - want| <= atol + rtol * max|want| elementwise, with a useful message. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol = 0, what = ""): void {
  expect(got.length).toBe(want.length);
  const tol = atol + rtol * maxAbs(want);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  expect(worst, `${what}: max error ${worst} at ${at} (got ${got[at]}, want ${want[at]}), tolerance ${tol}`).toBeLessThanOrEqual(tol);
}

interface Dims {
  B: number;
  T: number;
  nh: number;
  nkv: number;
  hd: number;
}

// ---- helpers over the backend ----------------------------------------------------------

function runAttention(q: Float32Array, k: Float32Array, v: Float32Array, d: Dims) {
  const { B, T, nh, nkv, hd } = d;
  const tq = be.upload(q, [B, T, nh, hd]), tk = be.upload(k, [B, T, nkv, hd]), tv = be.upload(v, [B, T, nkv, hd]);
  const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]);
  be.attentionForward(out, lse, tq, tk, tv);
  return { tq, tk, tv, out, lse };
}

const SHAPES: Dims[] = [
  { B: 2, T: 7, nh: 6, nkv: 2, hd: 10 }, // GQA, blocks mixing tokens and heads, hd = 8 + 2
  { B: 1, T: 9, nh: 3, nkv: 3, hd: 6 }, // nh = nkv
  { B: 3, T: 1, nh: 4, nkv: 1, hd: 8 }, // T = 1, multi-query
  { B: 1, T: 5, nh: 2, nkv: 1, hd: 2 }, // tiny head dim (scalar tail only)
  { B: 1, T: 11, nh: 4, nkv: 2, hd: 24 }, // head dim 16 + 8 (both vector widths)
];

describe("rope", () => {
  it("matches the float64 rotate-half reference, including large positions", () => {
    const N = 5, nh = 3, hd = 12, theta = 1e6;
    const x = rand(N * nh * hd, 1);
    const pos = Int32Array.from([0, 1, 7, 4095, 131071]);
    const out = be.zeros([N, nh, hd]);
    be.ropeForward(out, be.upload(x, [N, nh, hd]), be.upload(pos, [N]), theta);
    expectClose(be.readSync(out), rope(x, pos, pos.length, nh, hd, theta), 1e-6, 0, "rope forward");
  });

  it("keeps position 0 unchanged and rotates pairs (i, i + hd/2)", () => {
    const nh = 1, hd = 4;
    const x = Float32Array.from([1, 2, 3, 4, 1, 0, 0, 0]);
    const out = be.zeros([2, nh, hd]);
    be.ropeForward(out, be.upload(x, [2, nh, hd]), be.upload(Int32Array.from([0, 1]), [2]), 10000);
    const y = be.readSync(out);
    expectClose(y.subarray(0, 4), [1, 2, 3, 4], 0, 0, "pos 0");
    // pos 1, frequency 0: (x0, x2) = (1, 0) rotated by 1 radian.
    expectClose([y[4], y[6]], [Math.cos(1), Math.sin(1)], 1e-6, 0, "pos 1 pair 0");
  });

  it("backward is the inverse rotation; forward then backward is the identity, in place", () => {
    const N = 6, nh = 2, hd = 8, theta = 10000;
    const x = rand(N * nh * hd, 2);
    const pos = Int32Array.from([3, 0, 17, 2, 100, 9]);
    const t = be.upload(x, [N, nh, hd]), tp = be.upload(pos, [N]);
    be.ropeForward(t, t, tp, theta);
    be.ropeBackward(t, t, tp, theta);
    expectClose(be.readSync(t), x, 1e-6, 0, "rope round trip");
  });

  it("backward matches finite differences of the reference", () => {
    const N = 4, nh = 2, hd = 6, theta = 500;
    const x = rand(N * nh * hd, 3), w = rand(N * nh * hd, 4);
    const pos = Int32Array.from([5, 1, 0, 33]);
    const dinp = be.zeros([N, nh, hd]);
    be.ropeBackward(dinp, be.upload(w, [N, nh, hd]), be.upload(pos, [N]), theta);
    const g = fdGrad((xx) => dot(rope(xx, pos, pos.length, nh, hd, theta), w), Float64Array.from(x));
    expectClose(be.readSync(dinp), g, 1e-5, 1e-6, "rope dinp");
  });

  it("rejects an odd head dim", () => {
    expect(() => be.ropeForward(be.zeros([2, 3]), be.zeros([2, 3]), be.zeros([2], "i32"), 10000)).toThrow(/even/);
  });
});

describe("attention forward", () => {
  for (const d of SHAPES) {
    it(`matches the float64 reference (B=${d.B} T=${d.T} nh=${d.nh} nkv=${d.nkv} hd=${d.hd})`, () => {
      const { B, T, nh, nkv, hd } = d;
      const q = rand(B * T * nh * hd, 10, 2), k = rand(B * T * nkv * hd, 11, 2), v = rand(B * T * nkv * hd, 12);
      const { out, lse } = runAttention(q, k, v, d);
      const ref = attentionAt(q, k, v, B, T, T, nh, nkv, hd);
      expectClose(be.readSync(out), ref.out, 2e-6, 1e-6, "out");
      expectClose(be.readSync(lse), ref.lse, 2e-6, 1e-6, "lse");
    });
  }

  it("handles larger head dims and many blocks (B=2 T=37 nh=4 nkv=2 hd=64)", () => {
    const d = { B: 2, T: 37, nh: 4, nkv: 2, hd: 64 };
    const q = rand(d.B * d.T * d.nh * d.hd, 20, 3), k = rand(d.B * d.T * d.nkv * d.hd, 21, 3), v = rand(d.B * d.T * d.nkv * d.hd, 22);
    const { out, lse } = runAttention(q, k, v, d);
    const ref = attentionAt(q, k, v, d.B, d.T, d.T, d.nh, d.nkv, d.hd);
    expectClose(be.readSync(out), ref.out, 5e-6, 1e-6, "out");
    expectClose(be.readSync(lse), ref.lse, 5e-6, 1e-6, "lse");
  });

  it("is stable with large scores (no overflow in exp)", () => {
    const d = { B: 1, T: 6, nh: 2, nkv: 1, hd: 4 };
    const q = rand(48, 30, 60), k = rand(24, 31, 60), v = rand(24, 32);
    const { out, lse } = runAttention(q, k, v, d);
    const ref = attentionAt(q, k, v, 1, 6, 6, 2, 1, 4);
    expect(maxAbs(ref.lse)).toBeGreaterThan(100);
    expectClose(be.readSync(out), ref.out, 1e-5, 1e-6, "out");
    expectClose(be.readSync(lse), ref.lse, 1e-6, 1e-5, "lse");
  });

  it("rejects nh not a multiple of nkv", () => {
    expect(() => be.attentionForward(be.zeros([1, 2, 3, 4]), be.zeros([1, 3, 2]), be.zeros([1, 2, 3, 4]), be.zeros([1, 2, 2, 4]), be.zeros([1, 2, 2, 4]))).toThrow(RangeError);
  });
});

describe("attention backward", () => {
  for (const d of SHAPES) {
    it(`matches finite differences (B=${d.B} T=${d.T} nh=${d.nh} nkv=${d.nkv} hd=${d.hd})`, () => {
      const { B, T, nh, nkv, hd } = d;
      const q = rand(B * T * nh * hd, 40, 1.5), k = rand(B * T * nkv * hd, 41, 1.5), v = rand(B * T * nkv * hd, 42);
      const w = rand(B * T * nh * hd, 43);
      const { tq, tk, tv, out, lse } = runAttention(q, k, v, d);
      const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
      // Garbage in the outputs proves they are overwritten, not accumulated.
      for (const t of [dq, dk, dv]) be.fill(t, 7);
      be.attentionBackward(dq, dk, dv, be.upload(w, [B, T, nh, hd]), tq, tk, tv, out, lse);

      const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vv: ArrayLike<number>) => dot(attentionAt(qq, kk, vv, B, T, T, nh, nkv, hd).out, w);
      const gq = fdGrad((x) => loss(x, k, v), Float64Array.from(q));
      const gk = fdGrad((x) => loss(q, x, v), Float64Array.from(k));
      const gv = fdGrad((x) => loss(q, k, x), Float64Array.from(v));
      expectClose(be.readSync(dq), gq, 2e-5, 2e-6, "dq");
      expectClose(be.readSync(dk), gk, 2e-5, 2e-6, "dk");
      expectClose(be.readSync(dv), gv, 2e-5, 2e-6, "dv");
    });
  }
});

describe("attention threading", () => {
  it("gives bit-identical results on 1 and 2 threads (no races in the GQA dk/dv sums)", () => {
    const d = { B: 2, T: 45, nh: 8, nkv: 2, hd: 32 };
    const { B, T, nh, nkv, hd } = d;
    const q = rand(B * T * nh * hd, 60), k = rand(B * T * nkv * hd, 61), v = rand(B * T * nkv * hd, 62), w = rand(B * T * nh * hd, 63);
    const before = be.native.buildInfo().threads;
    const run = (threads: number) => {
      be.native.setThreads(threads);
      const { tq, tk, tv, out, lse } = runAttention(q, k, v, d);
      const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
      be.attentionBackward(dq, dk, dv, be.upload(w, [B, T, nh, hd]), tq, tk, tv, out, lse);
      return [out, lse, dq, dk, dv].map((t) => Array.from(be.readSync(t)));
    };
    try {
      const one = run(1), two = run(2);
      for (let i = 0; i < one.length; i++) expect(two[i]).toEqual(one[i]);
    } finally {
      be.native.setThreads(before);
    }
  });
});

describe("KV cache", () => {
  const B = 3, nh = 4, nkv = 2, hd = 8, T = 9, S = 10;
  const q = rand(B * T * nh * hd, 50, 2), k = rand(B * T * nkv * hd, 51, 2), v = rand(B * T * nkv * hd, 52);
  const full = () => attentionAt(q, k, v, B, T, T, nh, nkv, hd).out;

  /** Rows [t0, t0 + n) of every batch row, optionally starting at a different t0 per row. */
  function slice(x: Float32Array, heads: number, t0: ArrayLike<number>, n: number): Float32Array {
    const out = new Float32Array(B * n * heads * hd);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < n; t++) {
        const src = ((b * T + t0[b] + t) * heads) * hd;
        out.set(x.subarray(src, src + heads * hd), (b * n + t) * heads * hd);
      }
    return out;
  }

  it("prefill + decode steps equal full causal attention, with per-row positions (right padding)", () => {
    const kc = be.zeros([B, S, nkv, hd]), vc = be.zeros([B, S, nkv, hd]);
    const expected = full();
    // Right-padded prompts of lengths 5, 3, 5 in a (B, 5) prefill; padding slots hold junk.
    const P = [5, 3, 5], Tp = 5;
    const junk = (x: Float32Array, heads: number) => {
      for (let b = 0; b < B; b++)
        for (let t = P[b]; t < Tp; t++) x.fill(123, (b * Tp + t) * heads * hd, (b * Tp + t + 1) * heads * hd);
      return x;
    };
    const zero = be.upload(new Int32Array(B), [B]);
    be.kvWrite(kc, be.upload(junk(slice(k, nkv, [0, 0, 0], Tp), nkv), [B, Tp, nkv, hd]), zero);
    be.kvWrite(vc, be.upload(junk(slice(v, nkv, [0, 0, 0], Tp), nkv), [B, Tp, nkv, hd]), zero);
    const out = be.zeros([B, Tp, nh, hd]);
    be.attentionDecode(out, be.upload(slice(q, nh, [0, 0, 0], Tp), [B, Tp, nh, hd]), kc, vc, zero);
    const got = be.readSync(out);
    for (let b = 0; b < B; b++) {
      const n = P[b] * nh * hd;
      expectClose(got.subarray(b * Tp * nh * hd, b * Tp * nh * hd + n), expected.subarray(b * T * nh * hd, b * T * nh * hd + n), 2e-6, 1e-6, `prefill row ${b}`);
    }
    // Decode: each row continues from its own length (row 1 overwrites its padding slots).
    for (let step = 0; step < 4; step++) {
      const at = P.map((p) => p + step);
      const pos = be.upload(Int32Array.from(at), [B]);
      be.kvWrite(kc, be.upload(slice(k, nkv, at, 1), [B, 1, nkv, hd]), pos);
      be.kvWrite(vc, be.upload(slice(v, nkv, at, 1), [B, 1, nkv, hd]), pos);
      const o = be.zeros([B, 1, nh, hd]);
      be.attentionDecode(o, be.upload(slice(q, nh, at, 1), [B, 1, nh, hd]), kc, vc, pos);
      const want = new Float64Array(B * nh * hd);
      for (let b = 0; b < B; b++) want.set(expected.subarray((b * T + at[b]) * nh * hd, (b * T + at[b] + 1) * nh * hd), b * nh * hd);
      expectClose(be.readSync(o), want, 2e-6, 1e-6, `decode step ${step}`);
    }
  });

  it("a multi-token chunk at per-row offsets equals full attention", () => {
    const kc = be.zeros([B, S, nkv, hd]), vc = be.zeros([B, S, nkv, hd]);
    be.kvWrite(kc, be.upload(slice(k, nkv, [0, 0, 0], T), [B, T, nkv, hd]), be.upload(new Int32Array(B), [B]));
    be.kvWrite(vc, be.upload(slice(v, nkv, [0, 0, 0], T), [B, T, nkv, hd]), be.upload(new Int32Array(B), [B]));
    const at = [2, 0, 4], Tq = 5;
    const o = be.zeros([B, Tq, nh, hd]);
    be.attentionDecode(o, be.upload(slice(q, nh, at, Tq), [B, Tq, nh, hd]), kc, vc, be.upload(Int32Array.from(at), [B]));
    const expected = full();
    const want = new Float64Array(B * Tq * nh * hd);
    for (let b = 0; b < B; b++) want.set(expected.subarray((b * T + at[b]) * nh * hd, (b * T + at[b] + Tq) * nh * hd), b * Tq * nh * hd);
    expectClose(be.readSync(o), want, 2e-6, 1e-6, "chunk");
  });

  // One-token steps take their own row-major path (8 keys per reduction, 4 rows per value
  // pass): contexts past several key blocks with tails, every group size up to 2 value passes.
  it.each([
    { nh: 4, nkv: 2, hd: 32 }, // the tiny preset's shape
    { nh: 3, nkv: 3, hd: 10 }, // no GQA, a head dim with a scalar tail
    { nh: 8, nkv: 1, hd: 16 }, // 8 rows: two value passes
    { nh: 6, nkv: 2, hd: 40 }, // 3 rows: a short value pass
  ])("one-token decode over long caches equals full attention (nh=$nh nkv=$nkv hd=$hd)", ({ nh, nkv, hd }) => {
    const B = 3, T = 45, S = 48, at = [44, 7, 23]; // keys attended: 45, 8, 24
    const q = rand(B * T * nh * hd, 60, 2), k = rand(B * T * nkv * hd, 61, 2), v = rand(B * T * nkv * hd, 62);
    const pick = (x: Float32Array, heads: number, t: (b: number) => number) => {
      const out = new Float32Array(B * heads * hd);
      for (let b = 0; b < B; b++) out.set(x.subarray((b * T + t(b)) * heads * hd, (b * T + t(b) + 1) * heads * hd), b * heads * hd);
      return out;
    };
    const kc = be.zeros([B, S, nkv, hd]), vc = be.zeros([B, S, nkv, hd]);
    for (let t = 0; t < T; t++) {
      const pos = be.upload(Int32Array.from({ length: B }, () => t), [B]);
      be.kvWrite(kc, be.upload(pick(k, nkv, () => t), [B, 1, nkv, hd]), pos);
      be.kvWrite(vc, be.upload(pick(v, nkv, () => t), [B, 1, nkv, hd]), pos);
    }
    const o = be.zeros([B, 1, nh, hd]);
    be.attentionDecode(o, be.upload(pick(q, nh, (b) => at[b]), [B, 1, nh, hd]), kc, vc, be.upload(Int32Array.from(at), [B]));
    const expected = attentionAt(q, k, v, B, T, T, nh, nkv, hd).out;
    const want = new Float64Array(B * nh * hd);
    for (let b = 0; b < B; b++) want.set(expected.subarray((b * T + at[b]) * nh * hd, (b * T + at[b] + 1) * nh * hd), b * nh * hd);
    expectClose(be.readSync(o), want, 2e-6, 1e-6, "decode");
  });

  it("kvWrite writes exactly rows pos .. pos + Tq - 1", () => {
    const c = be.zeros([2, 4, 1, 2]);
    be.kvWrite(c, be.upload(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 2, 1, 2]), be.upload(Int32Array.from([1, 2]), [2]));
    expect(Array.from(be.readSync(c))).toEqual([0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 5, 6, 7, 8]);
  });

  it("rejects positions outside the cache with a RangeError, writing nothing", () => {
    const c = be.zeros([2, 4, 1, 2]);
    const x = be.upload(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 2, 1, 2]);
    expect(() => be.kvWrite(c, x, be.upload(Int32Array.from([0, 3]), [2]))).toThrow(RangeError);
    expect(() => be.kvWrite(c, x, be.upload(Int32Array.from([0, 3]), [2]))).toThrow(/batch row 1 writes positions 3 \.\. 4, outside the cache of 4/);
    expect(() => be.kvWrite(c, x, be.upload(Int32Array.from([-1, 0]), [2]))).toThrow(RangeError);
    expect(maxAbs(be.readSync(c))).toBe(0);
    const qd = be.zeros([2, 2, 2, 2]), o = be.zeros([2, 2, 2, 2]);
    expect(() => be.attentionDecode(o, qd, c, c, be.upload(Int32Array.from([3, 0]), [2]))).toThrow(/batch row 0 has queries at positions 3 \.\. 4, outside the cache of 4/);
    expect(() => be.attentionDecode(o, qd, c, c, be.upload(Int32Array.from([0, -2]), [2]))).toThrow(RangeError);
  });
});
