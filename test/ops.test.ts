// CPU ops (native/cpu) through CpuBackend: every op against a naive float64 reference on odd
// sizes, every backward op against central finite differences of that float64 reference,
// AdamW against torch (fixture) and a TS model of torch's update, and argument errors.
//
// Finite differences: loss = sum(out * w) with random w, computed in float64 by the reference
// forward; the native backward gets dout = w, so its result must equal d loss / d input.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { CpuBackend, type CpuTensor } from "../src/backend/cpu.js";
import { mulberry32 as rng } from "../src/util/rng.js";
import { dot, fdGrad, logprobFromLogits, matmul, rmsnorm, rows, swiglu } from "./helpers/reference-ops.js";

let be: CpuBackend;
beforeAll(() => {
  be = new CpuBackend();
});

// ---- helpers ---------------------------------------------------------------------------


function randf(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * scale;
  return x;
}

function randIds(n: number, limit: number, seed: number): Int32Array {
  const r = rng(seed);
  const x = new Int32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.floor(r() * limit);
  return x;
}

const f64 = (x: ArrayLike<number>) => Float64Array.from(x);
const up = (x: Float32Array | Int32Array, shape: number[]) => be.upload(x, shape);
const get = (t: CpuTensor) => be.readSync(t) as Float32Array;

/** Asserts |got - want| <= tol * (1 + |want|) elementwise, reporting the worst element. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  if (!(worst <= tol)) throw new Error(`${what}: error ${worst.toExponential(2)} > ${tol} at ${at}: got ${got[at]}, want ${want[at]}`);
}

/** Bit-for-bit equality; reports the first difference (vitest's diff of large arrays is slow). */
function expectSame(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) throw new Error(`${what}: differs at ${i}: ${got[i]} vs ${want[i]}`);
}

/** Cross-entropy per row (0 where the target is < 0): minus the reference log-prob. */
function crossEntropyRef(logits: ArrayLike<number>, targets: Int32Array, N: number, V: number): Float64Array {
  return logprobFromLogits(logits, targets, N, V, 1).lp.map((lp) => -lp);
}

// ---- elementwise -----------------------------------------------------------------------

describe("elementwise", () => {
  const n = 1013;
  it("add, accumulate, scale match float64", () => {
    const a = randf(n, 1), b = randf(n, 2);
    const out = be.zeros([n]);
    be.add(out, up(a, [n]), up(b, [n]));
    expectClose(get(out), f64(a).map((x, i) => x + b[i]), 1e-6, "add");

    const dst = up(a, [n]);
    be.accumulate(dst, up(b, [n]), -0.37);
    expectClose(get(dst), f64(a).map((x, i) => x - 0.37 * b[i]), 1e-6, "accumulate");

    const t = up(a, [n]);
    be.scale(t, 2.5);
    expectClose(get(t), f64(a).map((x) => x * 2.5), 1e-6, "scale");
  });

  it("add may alias its output with an input", () => {
    const a = up(randf(n, 3), [n]);
    const want = f64(get(a)).map((x) => 2 * x);
    be.add(a, a, a);
    expectClose(get(a), want, 1e-6, "add aliased");
  });

  it("sumSquares accumulates into out in double precision", () => {
    const big = 1 << 20;
    const t = randf(big, 4, 3);
    const out = up(new Float32Array([5]), [1]);
    be.sumSquares(out, up(t, [big]));
    const want = 5 + dot(t, t);
    expect(Math.abs(get(out)[0] - want) / want).toBeLessThan(1e-6);
  });
});

// ---- matmul ----------------------------------------------------------------------------

type MatmulFn = (out: CpuTensor, a: CpuTensor, b: CpuTensor, M: number, N: number, K: number, ta: boolean, tb: boolean, acc: boolean, alpha: number) => void;
const impls: [string, MatmulFn][] = [
  ["matmul", (out, a, b, _M, _N, _K, transA, transB, accumulate, alpha) => be.matmul(out, a, b, { transA, transB, accumulate, alpha })],
  ["matmulBuiltin", (out, a, b, M, N, K, ta, tb, acc, alpha) => be.native.matmulBuiltin(out.f32, a.f32, b.f32, M, N, K, ta, tb, acc, alpha)],
];

describe.each(impls)("%s", (_name, mm) => {
  const shapes: [number, number, number][] = [
    [37, 53, 29],
    [1, 17, 300], // a decode step: one row (the unpacked few-row path)
    [4, 301, 70], // few-row path, one group of rows
    [8, 45, 67], // the largest few-row product: two groups
    [9, 19, 13], // the smallest packed one
    [6, 16, 1],
    [150, 3100, 260], // crosses every block size of the built-in kernel (MC 144, NC 3072, KC 256)
  ];
  for (const [M, N, K] of shapes)
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        if (M === 150 && (ta || tb) && !(ta && tb)) continue; // the big shape: two combos suffice, keeps the TS reference quick
        it(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}`, () => {
          const a = randf(M * K, M + K), b = randf(K * N, N + K + 1);
          const A = up(a, ta ? [K, M] : [M, K]), B = up(b, tb ? [N, K] : [K, N]);
          const ref = matmul(a, b, M, N, K, ta, tb);

          // Overwrite: whatever out held (NaN here) must not leak into the result.
          const out = up(new Float32Array(M * N).fill(NaN), [M, N]);
          mm(out, A, B, M, N, K, ta, tb, false, 1);
          expectClose(get(out), ref, 1e-5, "out = a @ b");

          // Accumulate with alpha.
          const c0 = randf(M * N, 7);
          const acc = up(c0, [M, N]);
          mm(acc, A, B, M, N, K, ta, tb, true, -0.75);
          expectClose(get(acc), ref.map((x, i) => c0[i] - 0.75 * x), 1e-5, "out += alpha * a @ b");
        });
      }

  it("K = 0 gives zeros (or leaves out unchanged when accumulating)", () => {
    const out = up(new Float32Array(12).fill(3), [3, 4]);
    mm(out, be.zeros([3, 0]), be.zeros([0, 4]), 3, 4, 0, false, false, true, 1);
    expect(Array.from(get(out))).toEqual(new Array(12).fill(3));
    mm(out, be.zeros([3, 0]), be.zeros([0, 4]), 3, 4, 0, false, false, false, 1);
    expect(Array.from(get(out))).toEqual(new Array(12).fill(0));
  });
});

describe("matmulBuiltin threading", () => {
  // Packed (M = 150) and few-row (M = 7) paths, both layouts of b.
  it.each([
    [150, 333, 300, true],
    [150, 333, 300, false],
    [7, 700, 300, true],
    [7, 700, 300, false],
  ])("M=%i N=%i K=%i transB=%s: bit-identical on 1 and 2 threads (each output has one owner, same k order)", (M, N, K, tb) => {
    const a = randf(M * K, 11), b = randf(N * K, 12);
    const one = new Float32Array(M * N), two = new Float32Array(M * N);
    const before = be.native.buildInfo().threads;
    try {
      be.native.setThreads(1);
      be.native.matmulBuiltin(one, a, b, M, N, K, false, tb, false, 1);
      be.native.setThreads(2);
      be.native.matmulBuiltin(two, a, b, M, N, K, false, tb, false, 1);
    } finally {
      be.native.setThreads(before);
    }
    expectSame(two, one, "builtin on 2 threads vs 1");
    expectClose(one, matmul(a, b, M, N, K, false, tb), 1e-5, "threaded builtin");
  });
});

describe("matmul backward (the model's gradient formulas)", () => {
  it("dA = dOut @ B^T and dB = A^T @ dOut match finite differences", () => {
    const M = 9, N = 11, K = 7;
    const a = randf(M * K, 21), b = randf(K * N, 22), w = randf(M * N, 23);
    const dA = be.zeros([M, K]), dB = be.zeros([K, N]);
    const dOut = up(w, [M, N]);
    be.matmul(dA, dOut, up(b, [K, N]), { transB: true });
    be.matmul(dB, up(a, [M, K]), dOut, { transA: true });
    const b64 = f64(b), a64 = f64(a);
    expectClose(get(dA), fdGrad((x) => dot(matmul(x, b64, M, N, K, false, false), w), f64(a)), 1e-4, "dA");
    expectClose(get(dB), fdGrad((x) => dot(matmul(a64, x, M, N, K, false, false), w), f64(b)), 1e-4, "dB");
  });
});

describe("matmulAsync", () => {
  it("matches matmul and resolves to undefined", async () => {
    const M = 37, N = 53, K = 29;
    const a = randf(M * K, 31), b = randf(N * K, 32);
    const out = new Float32Array(M * N);
    await expect(be.native.matmulAsync(out, a, b, M, N, K, false, true, false, 2)).resolves.toBeUndefined();
    expectClose(out, matmul(a, b, M, N, K, false, true).map((x) => 2 * x), 1e-5, "async");
  });

  it("rejects (does not throw) on bad arguments", async () => {
    const p = be.native.matmulAsync(new Float32Array(4), new Float32Array(4), new Float32Array(3), 2, 2, 2, false, false, false, 1);
    expect(p).toBeInstanceOf(Promise);
    await expect(p).rejects.toThrow(RangeError);
    await expect(p).rejects.toThrow(/b has 3 elements, needs 4/);
    const q = be.native.matmulAsync(new Float32Array(4), new Int32Array(4) as unknown as Float32Array, new Float32Array(4), 2, 2, 2, false, false, false, 1);
    await expect(q).rejects.toThrow(TypeError);
  });
});

// ---- embedding, bias, gather -----------------------------------------------------------

describe("embedding", () => {
  const V = 23, C = 13, N = 31;
  const table = randf(V * C, 41);
  const ids = randIds(N, V, 42); // 31 draws from 23: repeats are certain, exercising the scatter-add

  it("forward gathers rows", () => {
    const out = be.zeros([N, C]);
    be.embeddingForward(out, up(ids, [N]), up(table, [V, C]));
    expectClose(get(out), rows(table, ids, C), 0, "embedding");
  });

  it("backward adds into dtable and matches finite differences", () => {
    const w = randf(N * C, 43);
    const d0 = randf(V * C, 44);
    const dtable = up(d0, [V, C]);
    be.embeddingBackward(dtable, up(w, [N, C]), up(ids, [N]));
    const fd = fdGrad((x) => dot(rows(x, ids, C), w), f64(table));
    expectClose(get(dtable), fd.map((g, i) => g + d0[i]), 1e-5, "dtable");
  });

  it("an out-of-range id is a RangeError naming the id and V", () => {
    const bad = Int32Array.from(ids);
    bad[5] = V;
    expect(() => be.embeddingForward(be.zeros([N, C]), up(bad, [N]), up(table, [V, C]))).toThrow(RangeError);
    expect(() => be.embeddingForward(be.zeros([N, C]), up(bad, [N]), up(table, [V, C]))).toThrow(/ids\[5\] = 23 .*V = 23/);
    bad[5] = -1;
    expect(() => be.embeddingBackward(be.zeros([V, C]), be.zeros([N, C]), up(bad, [N]))).toThrow(/ids\[5\] = -1/);
  });
});

describe("bias", () => {
  const N = 19, C = 37;
  const x = randf(N * C, 51), bias = randf(C, 52);
  it("biasAdd broadcasts over rows", () => {
    const out = up(x, [N, C]);
    be.biasAdd(out, up(bias, [C]));
    expectClose(get(out), f64(x).map((v, i) => v + bias[i % C]), 1e-6, "biasAdd");
  });
  it("biasBackward adds column sums and matches finite differences", () => {
    const w = randf(N * C, 53), d0 = randf(C, 54);
    const dbias = up(d0, [C]);
    be.biasBackward(dbias, up(w, [N, C]));
    const x64 = f64(x);
    const fd = fdGrad((bb) => dot(x64.map((v, i) => v + bb[i % C]), w), f64(bias));
    expectClose(get(dbias), fd.map((g, i) => g + d0[i]), 1e-5, "dbias");
  });
});

describe("gatherRows", () => {
  it("picks rows and bounds-checks idx", () => {
    const N = 17, C = 9, M = 5;
    const inp = randf(N * C, 61);
    const idx = Int32Array.from([16, 0, 3, 3, 11]);
    const out = be.zeros([M, C]);
    be.gatherRows(out, up(inp, [N, C]), up(idx, [M]));
    expectClose(get(out), rows(inp, idx, C), 0, "gatherRows");
    idx[2] = N;
    expect(() => be.gatherRows(out, up(inp, [N, C]), up(idx, [M]))).toThrow(RangeError);
    expect(() => be.gatherRows(out, up(inp, [N, C]), up(idx, [M]))).toThrow(/idx\[2\] = 17 .*N = 17/);
  });
});

// ---- rmsnorm, swiglu, cross-entropy ------------------------------------------------------

describe("rmsnorm", () => {
  const N = 7, C = 33, eps = 1e-5;
  const x = randf(N * C, 71, 2), wt = randf(C, 72);
  it("forward matches float64 (out and rstd)", () => {
    const out = be.zeros([N, C]), rstd = be.zeros([N]);
    be.rmsnormForward(out, rstd, up(x, [N, C]), up(wt, [C]), eps);
    const ref = rmsnorm(x, wt, N, C, eps);
    expectClose(get(out), ref.out, 1e-5, "out");
    expectClose(get(rstd), ref.rstd, 1e-5, "rstd");
  });
  it("backward: dinp overwritten, dweight accumulated, both match finite differences", () => {
    const w = randf(N * C, 73), dw0 = randf(C, 74);
    const out = be.zeros([N, C]), rstd = be.zeros([N]);
    const X = up(x, [N, C]), W = up(wt, [C]);
    be.rmsnormForward(out, rstd, X, W, eps);
    const dinp = up(new Float32Array(N * C).fill(NaN), [N, C]), dweight = up(dw0, [C]);
    be.rmsnormBackward(dinp, dweight, up(w, [N, C]), X, W, rstd);
    const x64 = f64(x), w64 = f64(wt);
    expectClose(get(dinp), fdGrad((xx) => dot(rmsnorm(xx, w64, N, C, eps).out, w), f64(x)), 1e-4, "dinp");
    const fdw = fdGrad((ww) => dot(rmsnorm(x64, ww, N, C, eps).out, w), f64(wt));
    expectClose(get(dweight), fdw.map((g, i) => g + dw0[i]), 1e-4, "dweight");
  });
});

describe("swiglu", () => {
  const n = 3 * 41;
  const g = randf(n, 81, 4), u = randf(n, 82, 2);
  it("forward matches float64", () => {
    const out = be.zeros([3, 41]);
    be.swigluForward(out, up(g, [3, 41]), up(u, [3, 41]));
    expectClose(get(out), swiglu(g, u), 1e-6, "swiglu");
  });
  it("backward matches finite differences", () => {
    const w = randf(n, 83);
    const dgate = up(new Float32Array(n).fill(NaN), [n]), dup = up(new Float32Array(n).fill(NaN), [n]);
    be.swigluBackward(dgate, dup, up(w, [n]), up(g, [n]), up(u, [n]));
    const g64 = f64(g), u64 = f64(u);
    expectClose(get(dgate), fdGrad((x) => dot(swiglu(x, u64), w), f64(g)), 1e-5, "dgate");
    expectClose(get(dup), fdGrad((x) => dot(swiglu(g64, x), w), f64(u)), 1e-5, "dup");
  });
});

describe("cross-entropy", () => {
  const N = 9, V = 37;
  const logits = randf(N * V, 91, 5);
  const targets = randIds(N, V, 92);
  targets[2] = -1; // ignored rows
  targets[7] = -100;
  it("forward matches float64, ignored rows give 0, large logits stay finite", () => {
    const loss = be.zeros([N]);
    be.crossEntropyForward(loss, up(logits, [N, V]), up(targets, [N]));
    const ref = crossEntropyRef(logits, targets, N, V);
    expectClose(get(loss), ref, 1e-5, "loss");
    expect(get(loss)[2]).toBe(0);

    const big = logits.map((x) => x * 100 + 1e4); // exp would overflow without the max shift
    be.crossEntropyForward(loss, up(big, [N, V]), up(targets, [N]));
    expectClose(get(loss), crossEntropyRef(big, targets, N, V), 1e-5, "loss, large logits");
  });
  it("backward matches finite differences, zero gradient on ignored rows", () => {
    const w = randf(N, 93);
    const dlogits = up(new Float32Array(N * V).fill(NaN), [N, V]);
    be.crossEntropyBackward(dlogits, up(w, [N]), up(logits, [N, V]), up(targets, [N]));
    const fd = fdGrad((x) => dot(crossEntropyRef(x, targets, N, V), w), f64(logits));
    const got = get(dlogits);
    expectClose(got, fd, 1e-5, "dlogits");
    for (let v = 0; v < V; v++) expect(got[2 * V + v]).toBe(0);
  });
  it("-Infinity logits (masked vocabulary) get probability 0 and gradient 0", () => {
    const masked = Float32Array.from(logits);
    for (let n = 0; n < N; n++) for (let v = 0; v < V; v += 3) if (v !== targets[n]) masked[n * V + v] = -Infinity;
    const loss = be.zeros([N]), dlogits = be.zeros([N, V]);
    be.crossEntropyForward(loss, up(masked, [N, V]), up(targets, [N]));
    be.crossEntropyBackward(dlogits, up(new Float32Array(N).fill(1), [N]), up(masked, [N, V]), up(targets, [N]));
    expectClose(get(loss), crossEntropyRef(masked, targets, N, V), 1e-5, "masked loss");
    const g = get(dlogits);
    for (let i = 0; i < N * V; i++) if (masked[i] === -Infinity) expect(g[i]).toBe(0);
  });
  it("a target >= V is a RangeError", () => {
    const bad = Int32Array.from(targets);
    bad[4] = V;
    expect(() => be.crossEntropyForward(be.zeros([N]), up(logits, [N, V]), up(bad, [N]))).toThrow(/targets\[4\] = 37 .*V = 37/);
    expect(() => be.crossEntropyBackward(be.zeros([N, V]), be.zeros([N]), up(logits, [N, V]), up(bad, [N]))).toThrow(RangeError);
  });
});

// ---- AdamW -----------------------------------------------------------------------------

interface AdamFixture {
  n: number;
  hp: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
  param0: number[];
  steps: { step: number; grad: number[]; param: number[]; m: number[]; v: number[] }[];
}

/** torch.optim.AdamW (single-tensor path), float32 tensors and Python-float scalars. */
function adamwRef(p: Float32Array, g: ArrayLike<number>, m: Float32Array, v: Float32Array, o: AdamFixture["hp"], step: number): void {
  const f = Math.fround;
  const decay = f(1 - o.lr * o.weightDecay);
  const stepSize = o.lr / (1 - o.beta1 ** step);
  const bc2Sqrt = f(Math.sqrt(1 - o.beta2 ** step));
  for (let i = 0; i < p.length; i++) {
    p[i] = f(p[i] * decay);
    m[i] = f(f(m[i] * f(o.beta1)) + f(g[i] * f(1 - o.beta1)));
    v[i] = f(f(v[i] * f(o.beta2)) + f(f(1 - o.beta2) * f(g[i] * g[i])));
    const denom = f(f(f(Math.sqrt(v[i])) / bc2Sqrt) + f(o.eps));
    p[i] = f(p[i] + f(-stepSize) * f(m[i] / denom));
  }
}

describe("adamw", () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const fx = JSON.parse(readFileSync(join(here, "fixtures", "adamw.json"), "utf8")) as AdamFixture;

  it("matches torch.optim.AdamW over 3 steps (fixture) and the TS model of it", () => {
    const n = fx.n;
    const P = up(Float32Array.from(fx.param0), [n]), M = be.zeros([n]), Vv = be.zeros([n]);
    const p = Float32Array.from(fx.param0), m = new Float32Array(n), v = new Float32Array(n);
    for (const s of fx.steps) {
      const G = up(Float32Array.from(s.grad), [n]);
      be.adamw(P, G, M, Vv, { ...fx.hp, step: s.step });
      adamwRef(p, s.grad, m, v, fx.hp, s.step);
      // torch's own numbers: to within a few float32 ulps (FMA contraction may differ)
      expectClose(get(P), s.param, 1e-6, `param after step ${s.step} vs torch`);
      expectClose(get(M), s.m, 1e-6, `m after step ${s.step} vs torch`);
      expectClose(get(Vv), s.v, 1e-6, `v after step ${s.step} vs torch`);
      expectClose(get(P), p, 1e-6, `param after step ${s.step} vs TS reference`);
    }
  });

  it("weight decay is decoupled: zero gradient only shrinks the parameter", () => {
    const n = 11;
    const p0 = randf(n, 101);
    const P = up(p0, [n]);
    be.adamw(P, be.zeros([n]), be.zeros([n]), be.zeros([n]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1 });
    expectClose(get(P), f64(p0).map((x) => x * (1 - 0.1 * 0.5)), 1e-7, "decayed param");
  });
});

// ---- OpenMP paths ----------------------------------------------------------------------

// Tests run on one thread (OMP_NUM_THREADS=1); the parallel branches only switch on above a
// size threshold, so run each op big enough on 1 and on 2 threads and compare. Ops that give
// each output a single owner must agree bit for bit.
describe("parallel paths agree with the serial ones", () => {
  function onThreads<T>(n: number, fn: () => T): T {
    const before = be.native.buildInfo().threads;
    be.native.setThreads(n);
    try {
      return fn();
    } finally {
      be.native.setThreads(before);
    }
  }
  const both = (fn: () => Float32Array) => [onThreads(1, fn), onThreads(2, fn)];

  it("embedding backward, bias backward, rmsnorm, swiglu, cross-entropy, adamw", () => {
    const N = 301, C = 259, V = 97;
    const ids = up(randIds(N, V, 111), [N]);
    const dout = up(randf(N * C, 112), [N, C]);
    const x = up(randf(N * C, 113), [N, C]);
    const w = up(randf(C, 114), [C]);
    const cases: [string, () => Float32Array][] = [
      ["embeddingBackward", () => {
        const d = be.zeros([V, C]);
        be.embeddingBackward(d, dout, ids);
        return get(d);
      }],
      ["biasBackward", () => {
        const d = be.zeros([C]);
        be.biasBackward(d, dout);
        return get(d);
      }],
      ["rmsnormBackward", () => {
        const out = be.zeros([N, C]), rstd = be.zeros([N]), dinp = be.zeros([N, C]), dw = be.zeros([C]);
        be.rmsnormForward(out, rstd, x, w, 1e-6);
        be.rmsnormBackward(dinp, dw, dout, x, w, rstd);
        return Float32Array.from([...get(out), ...get(dinp), ...get(dw)]);
      }],
      ["swigluBackward", () => {
        const dg = be.zeros([N, C]), du = be.zeros([N, C]);
        be.swigluBackward(dg, du, dout, x, dout);
        return Float32Array.from([...get(dg), ...get(du)]);
      }],
      ["crossEntropyBackward", () => {
        const dl = be.zeros([N, C]);
        be.crossEntropyBackward(dl, up(randf(N, 115), [N]), x, up(randIds(N, C, 116), [N]));
        return get(dl);
      }],
      ["adamw", () => {
        const p = up(randf(N * C, 117), [N * C]), m = be.zeros([N * C]), v = be.zeros([N * C]);
        be.adamw(p, dout, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 });
        return get(p);
      }],
    ];
    for (const [name, fn] of cases) {
      const [one, two] = both(fn);
      expectSame(two, one, `${name} on 2 threads vs 1`);
    }
  });

  it("sumSquares (a reduction: same value to rounding)", () => {
    const t = up(randf(1 << 18, 118), [1 << 18]);
    const [one, two] = both(() => {
      const out = be.zeros([1]);
      be.sumSquares(out, t);
      return get(out);
    });
    expectClose(two, one, 1e-6, "sumSquares");
  });
});

// ---- argument errors -------------------------------------------------------------------

describe("bad arguments", () => {
  it("wrong dtype is a TypeError, wrong shape a RangeError (TS checks)", () => {
    const f = be.zeros([4]), i = be.zeros([4], "i32");
    expect(() => be.add(f, i, f)).toThrow(TypeError);
    expect(() => be.embeddingForward(be.zeros([4, 3]), f, be.zeros([5, 3]))).toThrow(TypeError);
    expect(() => be.add(f, be.zeros([5]), f)).toThrow(RangeError);
    expect(() => be.matmul(be.zeros([3, 4]), be.zeros([3, 5]), be.zeros([6, 4]))).toThrow(RangeError);
    expect(() => be.matmul(be.zeros([3, 4]), be.zeros([3, 5]), be.zeros([5, 4]), { alpha: NaN })).toThrow(TypeError);
    expect(() => be.rmsnormForward(be.zeros([2, 5]), be.zeros([3]), be.zeros([2, 5]), be.zeros([5]), 1e-5)).toThrow(RangeError);
    const d = be.zeros([4]);
    d.dispose();
    expect(() => be.scale(d, 2)).toThrow(TypeError);
  });

  it("the native layer still refuses buffers that are too short or aliased", () => {
    const n = be.native;
    expect(() => n.add(new Float32Array(3), new Float32Array(4), new Float32Array(4), 4)).toThrow(RangeError);
    expect(() => n.matmulBuiltin(new Float32Array(4), new Float32Array(4), new Float32Array(3), 2, 2, 2, false, false, false, 1)).toThrow(/b has 3 elements/);
    const buf = new Float32Array(8);
    expect(() => n.matmul(buf.subarray(0, 4), buf.subarray(2, 6), new Float32Array(4), 2, 2, 2, false, false, false, 1)).toThrow(/share memory/);
    expect(() => n.scale(new Float32Array(2), 1, -1)).toThrow(RangeError);
  });
});
