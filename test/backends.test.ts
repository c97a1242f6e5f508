// Cross-backend op test (ggml test-backend-ops style): every op of the Backend interface runs on
// every available backend with the same random inputs and odd shapes, and is compared with the
// CpuBackend, the reference. Error per op = max|a - b| / max(1, max|b|); a table of them is
// printed at the end. A backend that is not available is skipped with its reason printed.
import { afterAll, describe, expect, it } from "vitest";
import type { Backend, Tensor } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { CudaBackend } from "../src/backend/cuda.js";
import { WebGpuBackend } from "../src/backend/webgpu/index.js";
import { nerr, rand, randInt } from "./helpers/reference-ops.js";

type Out = Record<string, Float32Array | Int32Array>;
interface OpCase {
  op: string;
  shape: string;
  /** Normalised error allowed (0 = exact). */
  tol: number;
  /** Runs the op on a backend and returns the outputs to compare. */
  run(be: Backend): Promise<Out>;
}

let cpu: CpuBackend | null = null;
let cpuReason = "";
try {
  cpu = new CpuBackend({ threads: 1 });
} catch (e) {
  cpuReason = (e as Error).message;
  console.warn(`cross-backend tests skipped: the CPU reference is unavailable: ${cpuReason}`);
}

/** Backends under test, each created or skipped with the reason it is unavailable. */
const candidates: { name: string; create: () => Promise<Backend> }[] = [
  { name: "webgpu", create: () => WebGpuBackend.create() },
  { name: "cuda", create: () => CudaBackend.create() },
];
const available: { name: string; be: Backend }[] = [];
const skipped: { name: string; reason: string }[] = [];
for (const c of candidates) {
  try {
    available.push({ name: c.name, be: await c.create() });
  } catch (e) {
    skipped.push({ name: c.name, reason: (e as Error).message });
    console.warn(`cross-backend tests: backend ${c.name} skipped: ${(e as Error).message}`);
  }
}

// Deterministic "random" odd sizes.
let sizeSeed = 12345;
function odd(lo: number, hi: number): number {
  sizeSeed = (Math.imul(sizeSeed, 1103515245) + 12345) >>> 0;
  const v = lo + (sizeSeed % (hi - lo + 1));
  return v % 2 === 0 ? v + 1 : v;
}
const even = (lo: number, hi: number) => odd(lo, hi) + 1;

const f32 = (n: number, seed: number, lo = -1, hi = 1) => rand(n, seed, lo, hi);
const up = (be: Backend, d: Float32Array | Int32Array, shape: number[]) => be.upload(d, shape);
async function outs(be: Backend, ts: Record<string, Tensor>): Promise<Out> {
  const o: Out = {};
  for (const [k, t] of Object.entries(ts)) o[k] = await be.read(t);
  return o;
}

function buildCases(): OpCase[] {
  const cases: OpCase[] = [];
  const add = (op: string, shape: string, tol: number, run: (be: Backend) => Promise<Out>) => cases.push({ op, shape, tol, run });

  {
    const n = odd(1000, 5000), a = f32(n, 1), b = f32(n, 2);
    add("add", `n=${n}`, 1e-6, async (be) => {
      const out = be.zeros([n]);
      be.add(out, up(be, a, [n]), up(be, b, [n]));
      return outs(be, { out });
    });
    add("accumulate", `n=${n}`, 1e-6, async (be) => {
      const d = up(be, a, [n]);
      be.accumulate(d, up(be, b, [n]), -0.37);
      return outs(be, { d });
    });
    add("scale", `n=${n}`, 1e-6, async (be) => {
      const d = up(be, a, [n]);
      be.scale(d, 1.7);
      return outs(be, { d });
    });
    add("sumSquares", `n=${n}`, 1e-5, async (be) => {
      const s = up(be, new Float32Array([0.5]), [1]);
      be.sumSquares(s, up(be, a, [n]));
      return outs(be, { s });
    });
    add("memory (write/copy/fill/view)", `n=${n}`, 0, async (be) => {
      const t = up(be, a, [n]);
      be.write(t, b.subarray(0, 17), 3);
      const c = be.zeros([n]);
      be.copy(c, t, 5, 2, n - 9);
      const v = be.view(c, [1, n]);
      be.scale(v, 2);
      const i = be.zeros([7], "i32");
      be.fill(i, -5);
      return outs(be, { c, i });
    });
  }
  {
    const V = odd(100, 400), C = odd(20, 70), N = odd(20, 60);
    const table = f32(V * C, 3), ids = randInt(N, 4, 0, V), dout = f32(N * C, 5), init = f32(V * C, 6);
    ids[1] = ids[2] = ids[N - 1];
    add("embeddingForward", `V=${V} C=${C} N=${N}`, 0, async (be) => {
      const out = be.zeros([N, C]);
      be.embeddingForward(out, up(be, ids, [N]), up(be, table, [V, C]));
      return outs(be, { out });
    });
    add("embeddingBackward", `V=${V} C=${C} N=${N}`, 1e-6, async (be) => {
      const dt = up(be, init, [V, C]);
      be.embeddingBackward(dt, up(be, dout, [N, C]), up(be, ids, [N]));
      return outs(be, { dt });
    });
    add("gatherRows", `N=${V} C=${C} M=${N}`, 0, async (be) => {
      const out = be.zeros([N, C]);
      be.gatherRows(out, up(be, table, [V, C]), up(be, ids, [N]));
      return outs(be, { out });
    });
  }
  for (const [transA, transB, skinny] of [[false, false, 0], [true, false, 0], [false, true, 0], [true, true, 0], [false, true, 1], [true, false, 1]]) {
    const M = skinny ? odd(1, 31) : odd(33, 150), N = odd(30, 150), K = odd(30, 200);
    const a = f32(M * K, 7), b = f32(K * N, 8), init = f32(M * N, 9);
    add("matmul", `M=${M} N=${N} K=${K} tA=${+transA} tB=${+transB} acc`, 1e-5, async (be) => {
      const out = up(be, init, [M, N]);
      be.matmul(out, up(be, a, transA ? [K, M] : [M, K]), up(be, b, transB ? [N, K] : [K, N]), { transA, transB, accumulate: true, alpha: 0.5 });
      return outs(be, { out });
    });
  }
  {
    const N = odd(40, 300), C = odd(30, 200);
    const x = f32(N * C, 10), bias = f32(C, 11), w = f32(C, 12, 0.5, 1.5), dout = f32(N * C, 13), dwInit = f32(C, 14);
    add("biasAdd", `N=${N} C=${C}`, 1e-6, async (be) => {
      const o = up(be, x, [N, C]);
      be.biasAdd(o, up(be, bias, [C]));
      return outs(be, { o });
    });
    add("biasBackward", `N=${N} C=${C}`, 1e-5, async (be) => {
      const db = up(be, dwInit, [C]);
      be.biasBackward(db, up(be, dout, [N, C]));
      return outs(be, { db });
    });
    add("rmsnormForward", `N=${N} C=${C}`, 1e-5, async (be) => {
      const out = be.zeros([N, C]), rstd = be.zeros([N]);
      be.rmsnormForward(out, rstd, up(be, x, [N, C]), up(be, w, [C]), 1e-6);
      return outs(be, { out, rstd });
    });
    add("rmsnormBackward", `N=${N} C=${C}`, 1e-5, async (be) => {
      const out = be.zeros([N, C]), rstd = be.zeros([N]), tx = up(be, x, [N, C]), tw = up(be, w, [C]);
      be.rmsnormForward(out, rstd, tx, tw, 1e-6);
      const dinp = be.zeros([N, C]), dw = up(be, dwInit, [C]);
      be.rmsnormBackward(dinp, dw, up(be, dout, [N, C]), tx, tw, rstd);
      return outs(be, { dinp, dw });
    });
  }
  {
    const N = odd(10, 40), nh = odd(1, 5), hd = even(4, 32);
    const x = f32(N * nh * hd, 15), pos = randInt(N, 16, 0, 3000);
    add("ropeForward", `N=${N} nh=${nh} hd=${hd}`, 1e-5, async (be) => {
      const out = be.zeros([N, nh, hd]);
      be.ropeForward(out, up(be, x, [N, nh, hd]), up(be, pos, [N]), 1e6);
      return outs(be, { out });
    });
    add("ropeBackward (in place)", `N=${N} nh=${nh} hd=${hd}`, 1e-5, async (be) => {
      const t = up(be, x, [N, nh, hd]);
      be.ropeBackward(t, t, up(be, pos, [N]), 1e4);
      return outs(be, { t });
    });
  }
  {
    const B = 2, T = odd(5, 40), nkv = odd(1, 2), nh = nkv * odd(1, 3), hd = odd(3, 20);
    const q = f32(B * T * nh * hd, 17), k = f32(B * T * nkv * hd, 18), v = f32(B * T * nkv * hd, 19), dout = f32(B * T * nh * hd, 20);
    const shape = `B=${B} T=${T} nh=${nh} nkv=${nkv} hd=${hd}`;
    const fwd = (be: Backend) => {
      const tq = up(be, q, [B, T, nh, hd]), tk = up(be, k, [B, T, nkv, hd]), tv = up(be, v, [B, T, nkv, hd]);
      const out = be.zeros([B, T, nh, hd]), lse = be.zeros([B, nh, T]);
      be.attentionForward(out, lse, tq, tk, tv);
      return { tq, tk, tv, out, lse };
    };
    add("attentionForward", shape, 1e-5, async (be) => {
      const { out, lse } = fwd(be);
      return outs(be, { out, lse });
    });
    add("attentionBackward", shape, 1e-5, async (be) => {
      const { tq, tk, tv, out, lse } = fwd(be);
      const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
      be.attentionBackward(dq, dk, dv, up(be, dout, [B, T, nh, hd]), tq, tk, tv, out, lse);
      return outs(be, { dq, dk, dv });
    });
    const S = T + 9, Tq = 3, pos = new Int32Array([0, T - 2]);
    const kc = f32(B * S * nkv * hd, 21), vc = f32(B * S * nkv * hd, 22), x = f32(B * Tq * nkv * hd, 23), qd = f32(B * Tq * nh * hd, 24);
    add("kvWrite + attentionDecode", `${shape} S=${S} Tq=${Tq}`, 1e-5, async (be) => {
      const tk = up(be, kc, [B, S, nkv, hd]), tv = up(be, vc, [B, S, nkv, hd]), tp = up(be, pos, [B]);
      be.kvWrite(tk, up(be, x, [B, Tq, nkv, hd]), tp);
      be.kvWrite(tv, up(be, x, [B, Tq, nkv, hd]), tp);
      const out = be.zeros([B, Tq, nh, hd]);
      be.attentionDecode(out, up(be, qd, [B, Tq, nh, hd]), tk, tv, tp);
      return outs(be, { k: tk, out });
    });
  }
  {
    const n = odd(1000, 4000), g = f32(n, 25, -6, 6), u = f32(n, 26), d = f32(n, 27);
    add("swigluForward", `n=${n}`, 1e-5, async (be) => {
      const out = be.zeros([n]);
      be.swigluForward(out, up(be, g, [n]), up(be, u, [n]));
      return outs(be, { out });
    });
    add("swigluBackward", `n=${n}`, 1e-5, async (be) => {
      const dg = be.zeros([n]), du = be.zeros([n]);
      be.swigluBackward(dg, du, up(be, d, [n]), up(be, g, [n]), up(be, u, [n]));
      return outs(be, { dg, du });
    });
    const p = f32(n, 28), m = f32(n, 29, -0.1, 0.1), v = f32(n, 30, 0, 0.01);
    add("adamw", `n=${n}`, 1e-6, async (be) => {
      const tp = up(be, p, [n]), tm = up(be, m, [n]), tv = up(be, v, [n]);
      be.adamw(tp, up(be, d, [n]), tm, tv, { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 });
      return outs(be, { p: tp, m: tm, v: tv });
    });
  }
  {
    const N = odd(10, 60), V = odd(500, 3000);
    const logits = f32(N * V, 31, -8, 8), targets = randInt(N, 32, 0, V), dl = f32(N, 33);
    targets[1] = -1;
    const shape = `N=${N} V=${V}`;
    add("crossEntropyForward", shape, 1e-5, async (be) => {
      const loss = be.zeros([N]);
      be.crossEntropyForward(loss, up(be, logits, [N, V]), up(be, targets, [N]));
      return outs(be, { loss });
    });
    add("crossEntropyBackward", shape, 1e-5, async (be) => {
      const d = be.zeros([N, V]);
      be.crossEntropyBackward(d, up(be, dl, [N]), up(be, logits, [N, V]), up(be, targets, [N]));
      return outs(be, { d });
    });
    add("logprobFromLogits", `${shape} T=0.7`, 1e-5, async (be) => {
      const lp = be.zeros([N]), ent = be.zeros([N]);
      be.logprobFromLogits(lp, ent, up(be, logits, [N, V]), up(be, targets, [N]), 0.7);
      return outs(be, { lp, ent });
    });
    const seeds = Uint32Array.from({ length: N }, (_, i) => 77 + 1013 * i);
    add("sample (greedy)", shape, 0, async (be) => {
      const ids = be.zeros([N], "i32");
      be.sample(ids, up(be, logits, [N, V]), seeds, { temperature: 0, topK: 0, topP: 1, minP: 0 });
      return outs(be, { ids });
    });
    for (const o of [{ temperature: 1, topK: 0, topP: 1, minP: 0 }, { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02 }]) {
      add("sample (seeded)", `${shape} ${JSON.stringify(o)}`, 0, async (be) => {
        const ids = be.zeros([N], "i32");
        be.sample(ids, up(be, logits, [N, V]), seeds, o);
        return outs(be, { ids });
      });
    }
  }
  {
    const N = odd(10, 40), H = odd(16, 64), V = odd(300, 2000), T = 0.9;
    const hid = f32(N * H, 34), W = f32(V * H, 35, -0.5, 0.5), targets = randInt(N, 36, 0, V), dlp = f32(N, 37), dent = f32(N, 38), dwInit = f32(V * H, 39);
    targets[0] = -1;
    const fwd = (be: Backend) => {
      const th = up(be, hid, [N, H]), tw = up(be, W, [V, H]), tt = up(be, targets, [N]);
      const lp = be.zeros([N]), ent = be.zeros([N]), lse = be.zeros([N]);
      be.linearLogprobForward(lp, ent, lse, th, tw, tt, T);
      return { th, tw, tt, lp, ent, lse };
    };
    add("linearLogprobForward", `N=${N} H=${H} V=${V}`, 1e-5, async (be) => {
      const { lp, ent, lse } = fwd(be);
      return outs(be, { lp, ent, lse });
    });
    add("linearLogprobBackward", `N=${N} H=${H} V=${V}`, 1e-5, async (be) => {
      const { th, tw, tt, ent, lse } = fwd(be);
      const dh = be.zeros([N, H]), dw = up(be, dwInit, [V, H]);
      be.linearLogprobBackward(dh, dw, up(be, dlp, [N]), up(be, dent, [N]), th, tw, tt, lse, ent, T);
      return outs(be, { dh, dw });
    });
    add("linearLogprobForwardBackward", `N=${N} H=${H} V=${V}`, 1e-5, async (be) => {
      const lp = be.zeros([N]), ent = be.zeros([N]), dh = be.zeros([N, H]), dw = up(be, dwInit, [V, H]);
      const dl = Float32Array.from(dlp, (v, i) => (i % 3 === 1 ? 0 : v)), de = Float32Array.from(dent, (v, i) => (i % 3 === 1 ? 0 : v)); // some rows forward only
      be.linearLogprobForwardBackward(lp, ent, dh, dw, up(be, hid, [N, H]), up(be, W, [V, H]), up(be, targets, [N]), up(be, dl, [N]), up(be, de, [N]), T);
      return outs(be, { lp, ent, dh, dw });
    });
    add("linearSequenceLoss", `N=${N} H=${H} V=${V}`, 1e-5, async (be) => {
      const lp = be.zeros([N]), ent = be.zeros([N]), dh = be.zeros([N, H]), dw = up(be, dwInit, [V, H]);
      // segments of 2-4 rows, rows 3k+2 outside the loss; segments 2j and 2j+1 form group j
      const segment = Int32Array.from({ length: N }, (_, i) => (i % 3 === 2 ? -1 : Math.floor(i / 4)));
      const groupOf = Int32Array.from({ length: Math.ceil(N / 4) }, (_, s) => s >> 1);
      const lossGrad = (segs: Int32Array, sums: Float64Array) => Array.from(sums, (v, j) => Math.tanh(v / 10) + 0.1 * segs[j]);
      await be.linearSequenceLoss(lp, ent, dh, dw, up(be, hid, [N, H]), up(be, W, [V, H]), up(be, targets, [N]), segment, groupOf, lossGrad, T);
      return outs(be, { lp, ent, dh, dw });
    });
    // A frozen head stored in bf16 (--frozen-dtype bf16): forward, and dHidden without dW.
    add("linearLogprob bf16 weight", `N=${N} H=${H} V=${V}`, 1e-5, async (be) => {
      const th = up(be, hid, [N, H]), tw = be.upload(W, [V, H], "bf16"), tt = up(be, targets, [N]);
      const lp = be.zeros([N]), ent = be.zeros([N]), lse = be.zeros([N]), dh = be.zeros([N, H]);
      be.linearLogprobForward(lp, ent, lse, th, tw, tt, T);
      be.linearLogprobBackward(dh, null, up(be, dlp, [N]), up(be, dent, [N]), th, tw, tt, lse, ent, T);
      return outs(be, { lp, ent, dh });
    });
  }
  {
    const B = odd(3, 9), T = odd(10, 60), N = B * T;
    const lp = f32(N, 40, -3, -0.1), noise = f32(N, 41, -0.4, 0.4);
    const old = Float32Array.from(lp, (v, i) => v + noise[i]), refLp = Float32Array.from(lp, (v, i) => v - noise[(i * 7) % N]);
    const roll = Float32Array.from(old, (v, i) => v + 0.5 * noise[(i * 3) % N]), ent = f32(N, 42, 0, 3), adv = f32(B, 43, -2, 2);
    const mask = Float32Array.from(f32(N, 44, 0, 1), (v) => (v < 0.85 ? 1 : 0));
    for (const o of [
      { epsLow: 0.2, epsHigh: 0.28, dualClip: 0, beta: 0, kl: "k3" as const, entropyCoef: 0, tisCap: 0, aggregation: "token-mean" as const },
      { epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0.04, kl: "k3" as const, entropyCoef: 0.01, tisCap: 2, aggregation: "seq-mean-token-mean" as const },
      { epsLow: 0.1, epsHigh: 0.3, dualClip: 1.5, beta: 0.1, kl: "k2" as const, entropyCoef: 0, tisCap: 0, aggregation: "dr-grpo" as const, maxCompletionLength: T + 5 },
    ]) {
      add("grpoLoss", `B=${B} T=${T} ${o.aggregation} kl=${o.kl}`, 1e-5, async (be) => {
        const t = (a: Float32Array) => up(be, a, [B, T]);
        const dlp = be.zeros([N]), dent = be.zeros([N]), stats = be.zeros([11]);
        be.grpoLoss(dlp, dent, stats, t(lp), t(old), o.beta ? t(refLp) : null, o.tisCap ? t(roll) : null, o.entropyCoef ? t(ent) : null, up(be, adv, [B]), t(mask), { B, T, ...o });
        return outs(be, { dlp, dent, stats });
      });
    }
    // linearGrpoLoss: logprob and entropy are unspecified outside the mask, so the gradients and stats are compared.
    const H = odd(8, 40), V = odd(100, 900);
    const hid = f32(N * H, 45), W = f32(V * H, 46, -0.5, 0.5), targets = randInt(N, 47, 0, V), dwInit = f32(V * H, 48);
    for (const [k, o] of [
      { epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0.04, kl: "k3" as const, entropyCoef: 0.01, tisCap: 2, aggregation: "seq-mean-token-mean" as const, lossScale: 0.5 },
      { epsLow: 0.2, epsHigh: 0.28, dualClip: 0, beta: 0, kl: "k1" as const, entropyCoef: 0, tisCap: 0, aggregation: "token-mean" as const },
    ].entries())
      add("linearGrpoLoss", `B=${B} T=${T} H=${H} V=${V} ${o.aggregation}${k ? ", no old" : ""}`, 1e-5, async (be) => {
        const t = (a: Float32Array) => up(be, a, [N]);
        const dh = be.zeros([N, H]), dw = up(be, dwInit, [V, H]), stats = be.zeros([11]);
        be.linearGrpoLoss(dh, dw, stats, be.zeros([N]), be.zeros([N]), up(be, hid, [N, H]), up(be, W, [V, H]), up(be, targets, [N]), k ? null : t(old.map((v) => v - 4)), o.beta ? t(refLp.map((v) => v - 4)) : null, o.tisCap ? t(roll.map((v) => v - 4)) : null, up(be, adv, [B]), t(mask), 0.9, { B, T, ...o });
        return outs(be, { dh, dw, stats });
      });
  }
  // Frozen weights stored in bf16: matmul's b (forward x W^T, backward dY W, decode rows), the embedding table.
  for (const [transB, skinny] of [[true, 0], [false, 0], [true, 1]]) {
    const M = skinny ? odd(1, 31) : odd(33, 150), N = odd(30, 150), K = odd(30, 200);
    const a = f32(M * K, 50), b = f32(K * N, 51), init = f32(M * N, 52);
    add("matmul bf16 b", `M=${M} N=${N} K=${K} tB=${+transB} acc`, 1e-5, async (be) => {
      const out = up(be, init, [M, N]);
      be.matmul(out, up(be, a, [M, K]), be.upload(b, transB ? [N, K] : [K, N], "bf16"), { transB, accumulate: true, alpha: 0.5 });
      return outs(be, { out });
    });
  }
  {
    const V = odd(100, 400), C = odd(20, 70), N = odd(20, 60);
    const table = f32(V * C, 53), ids = randInt(N, 54, 0, V);
    add("embeddingForward bf16 table", `V=${V} C=${C} N=${N}`, 0, async (be) => {
      const out = be.zeros([N, C]);
      be.embeddingForward(out, up(be, ids, [N]), be.upload(table, [V, C], "bf16"));
      return outs(be, { out, table: be.upload(table, [V, C], "bf16") });
    });
  }
  return cases;
}

const cases = buildCases();
const table: { backend: string; op: string; shape: string; err: number; tol: number }[] = [];

afterAll(() => {
  for (const { be } of available) be.destroy();
  if (table.length) {
    const lines = table.map((r) => `${r.backend.padEnd(7)} ${r.op.padEnd(30)} ${r.err.toExponential(2).padStart(9)}  ${r.err <= r.tol ? "ok  " : "FAIL"}  ${r.shape}`);
    console.log(`\ncross-backend errors vs cpu (max|a-b| / max(1, max|b|))\n${lines.join("\n")}`);
  }
  for (const s of skipped) console.warn(`backend ${s.name} was skipped: ${s.reason}`);
});

describe.skipIf(!cpu)("cross-backend ops vs cpu", () => {
  it("has at least the CPU reference", () => {
    expect(cpu).not.toBeNull();
  });
  for (const s of skipped) it.skip(`${s.name}: ${s.reason}`, () => {});
  for (const { name, be } of available) {
    describe(name, () => {
      for (const c of cases) {
        it(`${c.op} ${c.shape}`, async () => {
          const want = await c.run(cpu!);
          const got = await c.run(be);
          let err = 0;
          for (const k of Object.keys(want)) err = Math.max(err, nerr(got[k], want[k]));
          table.push({ backend: name, op: c.op, shape: c.shape, err, tol: c.tol });
          expect(err, `${c.op} ${c.shape}`).toBeLessThanOrEqual(c.tol);
        });
      }
    });
  }
});
