// CUDA backend. On a machine without a GPU (like the build machine) only the loading story
// runs: the addon loads, cudaInfo says why CUDA is unusable, CudaBackend.create() rejects with
// that reason. The op tests compare every CUDA op with the CPU backend on the same inputs and
// run wherever a device is found; here they are skipped with the reason printed.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPO_STATS, type Backend, type DType, type GrpoLossOptions, type KlEstimator, type LinearGrpoLossOptions, type LossAggregation, type Tensor } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { CudaBackend, cudaInfo } from "../src/backend/cuda.js";
import { loadAddon } from "../src/backend/native.js";
import { mulberry32 as rng } from "../src/util/rng.js";

const info = cudaInfo();
const gpu = info.devices > 0;
if (!gpu) console.warn(`[cuda.test] CUDA op tests skipped: ${info.error ?? "no CUDA device"}`);

// test/cuda_emu: the kernels built against a thread-per-CUDA-thread emulator (slow: big shapes are skipped).
const emulated = info.deviceNames.some((n) => n.includes("emulator"));

const addonPath = process.env.ANVIL_ADDON ?? join(dirname(fileURLToPath(import.meta.url)), "..", "build", "Release", "anvil.node");

describe("cudaInfo", () => {
  it("says whether the kernels were built, consistently with buildInfo()", () => {
    expect(info.built).toBe(loadAddon().buildInfo().cudaBuilt);
  });

  it("loads the built library without needing a driver", () => {
    if (!info.built) {
      expect(info.error).toMatch(/without CUDA/);
      return;
    }
    expect(info.loaded).toBe(true);
    expect(info.library).toMatch(/libanvil_cuda\w*\.so$/);
    expect(existsSync(info.library!)).toBe(true);
  });

  it("reports devices, or the reason there are none", () => {
    expect(Number.isInteger(info.devices)).toBe(true);
    expect(info.deviceNames).toHaveLength(info.devices);
    if (info.devices > 0) {
      expect(info.error).toBeNull();
    } else {
      // Here: cudaErrorInsufficientDriver (35), no driver at all; elsewhere e.g. cudaErrorNoDevice (100).
      expect(info.error).toMatch(/no CUDA|driver|\(35\)|\(100\)|cannot load|without CUDA/i);
    }
  });

  it("is stable across calls (the library is loaded once)", () => {
    expect(loadAddon().cudaInfo()).toEqual(info);
  });

  it.skipIf(!info.built)("leaves the addon usable when the library cannot be loaded", () => {
    // A fresh process with the library path pointing nowhere: the addon must still load and
    // run CPU code, and cudaInfo must carry the dlopen error.
    const script = `const a = require(${JSON.stringify(addonPath)}); console.log(JSON.stringify({ info: a.cudaInfo(), build: a.buildInfo() }));`;
    const out = execFileSync(process.execPath, ["-e", script], {
      env: { ...process.env, ANVIL_CUDA_LIB: "/nonexistent/libanvil_cuda.so" },
      encoding: "utf8",
    });
    const { info: child, build } = JSON.parse(out);
    expect(build.cudaBuilt).toBe(true);
    expect(child.loaded).toBe(false);
    expect(child.devices).toBe(0);
    expect(child.error).toMatch(/cannot load the CUDA kernels: .*nonexistent/);
  });
});

describe("CudaBackend.create", () => {
  it.skipIf(gpu)("rejects with the reason CUDA is unusable", async () => {
    await expect(CudaBackend.create()).rejects.toThrow(`CUDA backend unavailable: ${info.error}`);
  });

  it.skipIf(!gpu)("opens device 0 and rejects a device that does not exist", async () => {
    const be = await CudaBackend.create();
    expect(be.name).toBe("cuda");
    expect(be.deviceName.length).toBeGreaterThan(0);
    await expect(CudaBackend.create({ device: info.devices })).rejects.toThrow(RangeError);
  });
});

// ---- ops against the CPU backend ------------------------------------------------------------

const r = rng(1234);
function randn(n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}
function randint(n: number, max: number, min = 0): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = min + Math.floor(r() * (max - min));
  return out;
}

type Host = Float32Array | Int32Array;
/** Host data, shape, and the storage dtype when not the array's (bf16 weights). */
type Inputs = Record<string, [Host, number[]] | [Host, number[], DType]>;

/** max |a - b| / max(1, max |a|): absolute near zero, relative for large values. */
function relErr(a: Host, b: Host): number {
  let diff = 0, mag = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(a[i]));
  }
  return diff / mag;
}

describe.skipIf(!gpu)("CUDA ops match the CPU backend", () => {
  let cpu: CpuBackend;
  let cuda: CudaBackend;
  beforeAll(async () => {
    cpu = new CpuBackend();
    cuda = await CudaBackend.create();
  });
  afterAll(() => cuda?.destroy());

  /** Runs `op` on both backends from the same inputs (outputs included: they may accumulate). */
  async function compare(inputs: Inputs, op: (be: Backend, t: Record<string, Tensor>) => void, outputs: string[], tol = 1e-4): Promise<void> {
    const results: Record<string, Record<string, Host>> = {};
    for (const be of [cpu, cuda] as Backend[]) {
      const t: Record<string, Tensor> = {};
      for (const [k, [data, shape, dtype]] of Object.entries(inputs)) t[k] = be.upload(data, shape, dtype);
      op(be, t);
      await be.sync();
      results[be.name] = {};
      for (const k of outputs) results[be.name][k] = await be.read(t[k]);
      for (const x of Object.values(t)) x.dispose();
    }
    for (const k of outputs) {
      const [a, b] = [results.cpu[k], results.cuda[k]];
      expect(b.length, k).toBe(a.length);
      if (a instanceof Int32Array) expect(Array.from(b), k).toEqual(Array.from(a));
      else expect(relErr(a, b), `${k}: max normalised error`).toBeLessThan(tol);
    }
  }

  it("memory: upload, read, write, copy, fill", async () => {
    const a = cuda.upload(new Float32Array([1, 2, 3, 4, 5]), [5]);
    cuda.write(a, new Float32Array([9, 8]), 3);
    const b = cuda.zeros([5]);
    cuda.copy(b, a, 1, 2, 3);
    expect(Array.from(await cuda.read(b))).toEqual([0, 3, 9, 8, 0]);
    cuda.fill(b, -1.5);
    expect(Array.from(await cuda.read(b))).toEqual([-1.5, -1.5, -1.5, -1.5, -1.5]);
    const i = cuda.zeros([3], "i32");
    cuda.fill(i, -7);
    expect(Array.from(await cuda.read(i))).toEqual([-7, -7, -7]);
    const v = cuda.view(a, [5, 1]);
    cuda.scale(v, 2);
    expect(Array.from(await cuda.read(a))).toEqual([2, 4, 6, 18, 16]);
    v.dispose(); // does not free a
    expect(Array.from(await cuda.read(a))).toEqual([2, 4, 6, 18, 16]);
    const v2 = cuda.view(a, [5]);
    for (const t of [a, b, i]) t.dispose();
    expect(v2.disposed).toBe(true);
    await expect(cuda.read(a)).rejects.toThrow(/disposed/);
  });

  it("elementwise: add, accumulate, scale, sumSquares", async () => {
    const n = 1001;
    await compare({ out: [randn(n), [n]], a: [randn(n), [n]], b: [randn(n), [n]] }, (be, t) => be.add(t.out, t.a, t.b), ["out"]);
    await compare({ dst: [randn(n), [n]], src: [randn(n), [n]] }, (be, t) => be.accumulate(t.dst, t.src, 0.7), ["dst"]);
    await compare({ t: [randn(n), [n]] }, (be, t) => be.scale(t.t, -1.3), ["t"]);
    await compare({ out: [new Float32Array([0.5]), [1]], t: [randn(100_003), [100_003]] }, (be, t) => be.sumSquares(t.out, t.t), ["out"], 1e-5);
  });

  it("embedding forward and backward (repeated ids accumulate)", async () => {
    const [N, C, V] = [23, 19, 37];
    const ids = randint(N, 5); // many repeats
    await compare({ out: [randn(N * C), [N, C]], ids: [ids, [N]], table: [randn(V * C), [V, C]] }, (be, t) => be.embeddingForward(t.out, t.ids, t.table), ["out"]);
    await compare({ dtable: [randn(V * C), [V, C]], dout: [randn(N * C), [N, C]], ids: [ids, [N]] }, (be, t) => be.embeddingBackward(t.dtable, t.dout, t.ids), ["dtable"]);
  });

  it("embedding reports out-of-range ids at sync", async () => {
    const table = cuda.upload(randn(8 * 4), [8, 4]);
    const ids = cuda.upload(new Int32Array([1, 8]), [2]);
    const out = cuda.zeros([2, 4]);
    cuda.embeddingForward(out, ids, table);
    await expect(cuda.sync()).rejects.toThrow(/outside its table/);
    await cuda.sync(); // the flag is cleared once reported
    for (const t of [table, ids, out]) t.dispose();
  });

  for (const transA of [false, true])
    for (const transB of [false, true])
      it(`matmul transA=${transA} transB=${transB} (overwrite and accumulate)`, async () => {
        const [M, N, K] = [67, 45, 131];
        const a: [Host, number[]] = [randn(M * K), transA ? [K, M] : [M, K]];
        const b: [Host, number[]] = [randn(K * N), transB ? [N, K] : [K, N]];
        await compare({ out: [randn(M * N), [M, N]], a, b }, (be, t) => be.matmul(t.out, t.a, t.b, { transA, transB, alpha: 0.5 }), ["out"]);
        await compare({ out: [randn(M * N), [M, N]], a, b }, (be, t) => be.matmul(t.out, t.a, t.b, { transA, transB, accumulate: true }), ["out"]);
      });

  it("bias add and backward", async () => {
    const [N, C] = [33, 71];
    await compare({ out: [randn(N * C), [N, C]], bias: [randn(C), [C]] }, (be, t) => be.biasAdd(t.out, t.bias), ["out"]);
    await compare({ dbias: [randn(C), [C]], dout: [randn(N * C), [N, C]] }, (be, t) => be.biasBackward(t.dbias, t.dout), ["dbias"]);
  });

  it("rmsnorm forward and backward", async () => {
    const [N, C] = [13, 257];
    const inp: [Host, number[]] = [randn(N * C, 2), [N, C]], weight: [Host, number[]] = [randn(C), [C]];
    await compare({ out: [randn(N * C), [N, C]], rstd: [randn(N), [N]], inp, weight }, (be, t) => be.rmsnormForward(t.out, t.rstd, t.inp, t.weight, 1e-6), ["out", "rstd"]);
    const rstd = new Float32Array(N).map(() => 0.5 + r());
    await compare(
      { dinp: [randn(N * C), [N, C]], dweight: [randn(C), [C]], dout: [randn(N * C), [N, C]], inp, weight, rstd: [rstd, [N]] },
      (be, t) => be.rmsnormBackward(t.dinp, t.dweight, t.dout, t.inp, t.weight, t.rstd),
      ["dinp", "dweight"],
    );
  });

  it("rope forward and backward, large positions", async () => {
    const [N, nh, hd] = [11, 3, 64];
    const pos: [Host, number[]] = [randint(N, 5000), [N]];
    await compare({ out: [randn(N * nh * hd), [N, nh, hd]], inp: [randn(N * nh * hd), [N, nh, hd]], pos }, (be, t) => be.ropeForward(t.out, t.inp, t.pos, 1e6), ["out"], 1e-3);
    await compare({ x: [randn(N * nh * hd), [N, nh, hd]], pos }, (be, t) => be.ropeBackward(t.x, t.x, t.pos, 10000), ["x"], 1e-3);
  });

  for (const [B, T, nh, nkv, hd] of [[2, 37, 4, 2, 40], [1, 9, 2, 2, 128], [1, 5, 6, 1, 8]])
    it(`attention forward and backward B=${B} T=${T} nh=${nh} nkv=${nkv} hd=${hd}`, async () => {
      const q: [Host, number[]] = [randn(B * T * nh * hd), [B, T, nh, hd]];
      const k: [Host, number[]] = [randn(B * T * nkv * hd), [B, T, nkv, hd]];
      const v: [Host, number[]] = [randn(B * T * nkv * hd), [B, T, nkv, hd]];
      await compare({ out: [randn(B * T * nh * hd), [B, T, nh, hd]], lse: [randn(B * nh * T), [B, nh, T]], q, k, v }, (be, t) => be.attentionForward(t.out, t.lse, t.q, t.k, t.v), ["out", "lse"]);
      // The backward needs a consistent out/lse: take them from the CPU forward.
      const cq = cpu.upload(q[0], q[1]), ck = cpu.upload(k[0], k[1]), cv = cpu.upload(v[0], v[1]);
      const cout = cpu.zeros(q[1]), clse = cpu.zeros([B, nh, T]);
      cpu.attentionForward(cout, clse, cq, ck, cv);
      const out: [Host, number[]] = [cpu.readSync(cout), q[1]], lse: [Host, number[]] = [cpu.readSync(clse), [B, nh, T]];
      await compare(
        { dq: [randn(q[0].length), q[1]], dk: [randn(k[0].length), k[1]], dv: [randn(k[0].length), k[1]], dout: [randn(q[0].length), q[1]], q, k, v, out, lse },
        (be, t) => be.attentionBackward(t.dq, t.dk, t.dv, t.dout, t.q, t.k, t.v, t.out, t.lse),
        ["dq", "dk", "dv"],
      );
    });

  it("kvWrite and attentionDecode against a cache", async () => {
    const [B, Tq, S, nh, nkv, hd] = [2, 3, 50, 4, 2, 32];
    const pos: [Host, number[]] = [new Int32Array([5, 20]), [B]];
    const cache = (): [Host, number[]] => [randn(B * S * nkv * hd), [B, S, nkv, hd]];
    await compare({ cache: cache(), x: [randn(B * Tq * nkv * hd), [B, Tq, nkv, hd]], pos }, (be, t) => be.kvWrite(t.cache, t.x, t.pos), ["cache"]);
    await compare(
      { out: [randn(B * Tq * nh * hd), [B, Tq, nh, hd]], q: [randn(B * Tq * nh * hd), [B, Tq, nh, hd]], kc: cache(), vc: cache(), pos },
      (be, t) => be.attentionDecode(t.out, t.q, t.kc, t.vc, t.pos),
      ["out"],
    );
  });

  it("swiglu forward and backward", async () => {
    const n = 999;
    const gate: [Host, number[]] = [randn(n, 4), [n]], up: [Host, number[]] = [randn(n), [n]];
    await compare({ out: [randn(n), [n]], gate, up }, (be, t) => be.swigluForward(t.out, t.gate, t.up), ["out"]);
    await compare({ dgate: [randn(n), [n]], dup: [randn(n), [n]], dout: [randn(n), [n]], gate, up }, (be, t) => be.swigluBackward(t.dgate, t.dup, t.dout, t.gate, t.up), ["dgate", "dup"]);
  });

  it("cross-entropy forward and backward, ignored targets", async () => {
    const [N, V] = [9, 1000];
    const targets = randint(N, V);
    targets[3] = -1;
    const logits: [Host, number[]] = [randn(N * V, 5), [N, V]];
    await compare({ loss: [randn(N), [N]], logits, targets: [targets, [N]] }, (be, t) => be.crossEntropyForward(t.loss, t.logits, t.targets), ["loss"]);
    await compare({ dlogits: [randn(N * V), [N, V]], dloss: [randn(N), [N]], logits, targets: [targets, [N]] }, (be, t) => be.crossEntropyBackward(t.dlogits, t.dloss, t.logits, t.targets), ["dlogits"]);
  });

  it("gatherRows", async () => {
    const [M, N, C] = [17, 29, 33];
    await compare({ out: [randn(M * C), [M, C]], inp: [randn(N * C), [N, C]], idx: [randint(M, N), [M]] }, (be, t) => be.gatherRows(t.out, t.inp, t.idx), ["out"]);
  });

  it("adamw", async () => {
    const n = 1001;
    const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
    await compare(
      { p: [randn(n), [n]], g: [randn(n), [n]], m: [randn(n, 0.1), [n]], v: [new Float32Array(n).map(() => r() * 0.01), [n]] },
      (be, t) => be.adamw(t.p, t.g, t.m, t.v, opts),
      ["p", "m", "v"],
    );
  });

  it("logprobFromLogits, with temperature and an ignored target", async () => {
    const [N, V] = [7, 5003];
    const targets = randint(N, V);
    targets[0] = -1;
    await compare(
      { lp: [randn(N), [N]], ent: [randn(N), [N]], logits: [randn(N * V, 8), [N, V]], targets: [targets, [N]] },
      (be, t) => be.logprobFromLogits(t.lp, t.ent, t.logits, t.targets, 0.7),
      ["lp", "ent"],
    );
  });

  for (const [N, H, V] of [[37, 48, 1003], [4100, 16, 9000]])
    it.skipIf(emulated && N > 1000)(`linearLogprob forward and backward N=${N} H=${H} V=${V}`, async () => {
      const targets = randint(N, V);
      targets[1] = -1;
      const hidden: [Host, number[]] = [randn(N * H), [N, H]], weight: [Host, number[]] = [randn(V * H, 0.5), [V, H]];
      await compare(
        { lp: [randn(N), [N]], ent: [randn(N), [N]], lse: [randn(N), [N]], hidden, weight, targets: [targets, [N]] },
        (be, t) => be.linearLogprobForward(t.lp, t.ent, t.lse, t.hidden, t.weight, t.targets, 0.8),
        ["lp", "ent"],
        2e-4,
      );
      const ch = cpu.upload(hidden[0], hidden[1]), cw = cpu.upload(weight[0], weight[1]), ct = cpu.upload(targets, [N]);
      const [lp, ent, lse] = [cpu.zeros([N]), cpu.zeros([N]), cpu.zeros([N])];
      cpu.linearLogprobForward(lp, ent, lse, ch, cw, ct, 0.8);
      await compare(
        {
          dh: [randn(N * H), [N, H]], dw: [randn(V * H), [V, H]], dlp: [randn(N), [N]], dent: [randn(N), [N]], hidden, weight, targets: [targets, [N]],
          lse: [cpu.readSync(lse), [N]], ent: [cpu.readSync(ent), [N]],
        },
        (be, t) => be.linearLogprobBackward(t.dh, t.dw, t.dlp, t.dent, t.hidden, t.weight, t.targets, t.lse, t.ent, 0.8),
        ["dh", "dw"],
        2e-4,
      );
    });

  it("bf16 weights: matmul (both layouts, decode rows), embedding, linear log-prob without dW; 2 bytes per element", async () => {
    const w16 = cuda.upload(randn(7 * 5), [7, 5], "bf16");
    expect(w16.bytes).toBe(2 * 36); // rounded up to whole 32-bit words
    cuda.fill(w16, 1.5);
    expect(Array.from(await cuda.read(w16))).toEqual(new Array(35).fill(1.5));
    w16.dispose();
    for (const [M, N, K] of [[67, 45, 131], [3, 70, 33]])
      for (const transB of [false, true]) {
        const b: [Host, number[], DType] = [randn(K * N), transB ? [N, K] : [K, N], "bf16"];
        await compare({ out: [randn(M * N), [M, N]], a: [randn(M * K), [M, K]], b }, (be, t) => be.matmul(t.out, t.a, t.b, { transB, alpha: 0.5 }), ["out"]);
        await compare({ out: [randn(M * N), [M, N]], a: [randn(M * K), [M, K]], b }, (be, t) => be.matmul(t.out, t.a, t.b, { transB, accumulate: true }), ["out"]);
      }
    const [N, C, V] = [23, 19, 37];
    await compare({ out: [randn(N * C), [N, C]], ids: [randint(N, V), [N]], table: [randn(V * C), [V, C], "bf16"] }, (be, t) => be.embeddingForward(t.out, t.ids, t.table), ["out"]);
    const [Nl, H, Vl] = [37, 48, 1003];
    const targets = randint(Nl, Vl);
    targets[1] = -1;
    const hidden: [Host, number[]] = [randn(Nl * H), [Nl, H]];
    const weight: [Host, number[], DType] = [randn(Vl * H, 0.5), [Vl, H], "bf16"];
    await compare(
      { lp: [randn(Nl), [Nl]], ent: [randn(Nl), [Nl]], lse: [randn(Nl), [Nl]], hidden, weight, targets: [targets, [Nl]] },
      (be, t) => be.linearLogprobForward(t.lp, t.ent, t.lse, t.hidden, t.weight, t.targets, 0.8),
      ["lp", "ent"],
      2e-4,
    );
    const [lp, ent, lse] = [cpu.zeros([Nl]), cpu.zeros([Nl]), cpu.zeros([Nl])];
    cpu.linearLogprobForward(lp, ent, lse, cpu.upload(hidden[0], hidden[1]), cpu.upload(weight[0], weight[1], "bf16"), cpu.upload(targets, [Nl]), 0.8);
    await compare(
      { dh: [randn(Nl * H), [Nl, H]], dlp: [randn(Nl), [Nl]], dent: [randn(Nl), [Nl]], hidden, weight, targets: [targets, [Nl]], lse: [cpu.readSync(lse), [Nl]], ent: [cpu.readSync(ent), [Nl]] },
      (be, t) => be.linearLogprobBackward(t.dh, null, t.dlp, t.dent, t.hidden, t.weight, t.targets, t.lse, t.ent, 0.8),
      ["dh"],
      2e-4,
    );
  });

  const kls: KlEstimator[] = ["k1", "k2", "k3"];
  const aggs: LossAggregation[] = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "dr-grpo"];
  for (const [i, aggregation] of aggs.entries())
    it(`grpoLoss ${aggregation}, kl ${kls[i % 3]}, dual clip, TIS, entropy bonus`, async () => {
      const [B, T] = [4, 17];
      const N = B * T;
      const lp = randn(N, 2).map((x) => x - 2);
      const near = (d: number) => lp.map((x) => x + (r() * 2 - 1) * d);
      // Ragged lengths, and sequence 3 fully masked (it must not count in the seq-mean denominators).
      const mask = new Float32Array(N).map((_, j) => (j < 3 * T && j % T < T - (j % 5) ? 1 : 0));
      const o: GrpoLossOptions = { B, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: kls[i % 3], entropyCoef: 0.01, tisCap: 2, aggregation, maxCompletionLength: 20 };
      await compare(
        {
          dlp: [randn(N), [N]], dent: [randn(N), [N]], stats: [randn(GRPO_STATS.length), [GRPO_STATS.length]],
          lp: [lp, [N]], old: [near(0.5), [N]], ref: [near(0.3), [N]], roll: [near(0.2), [N]], ent: [new Float32Array(N).map(() => r() * 3), [N]],
          adv: [new Float32Array([1.5, -2, 0.3, 1]), [B]], mask: [mask, [N]],
        },
        (be, t) => be.grpoLoss(t.dlp, t.dent, t.stats, t.lp, t.old, t.ref, t.roll, t.ent, t.adv, t.mask, o),
        ["dlp", "dent", "stats"],
      );
    });

  for (const [i, aggregation] of aggs.entries())
    it(`linearGrpoLoss ${aggregation}${i % 2 ? ", no old log-probs" : ""}: one pass over the LM head`, async () => {
      const [B, T, H, V] = [4, 9, 24, 301];
      const N = B * T;
      const targets = randint(N, V);
      targets[2] = -1;
      // Ragged lengths, sequence 3 outside the loss; logprob and entropy are only defined in it, so
      // the gradients and stats are compared.
      const mask = new Float32Array(N).map((_, j) => (j < 3 * T && j % T < T - (j % 4) ? 1 : 0));
      const lp0 = randn(N, 0.5).map((x) => x - 6);
      const o: LinearGrpoLossOptions = { B, T, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: kls[i % 3], entropyCoef: 0.01, tisCap: 2, aggregation, maxCompletionLength: 12, lossScale: 0.6 };
      await compare(
        {
          dh: [randn(N * H), [N, H]], dw: [randn(V * H), [V, H]], stats: [randn(GRPO_STATS.length), [GRPO_STATS.length]], lp: [randn(N), [N]], ent: [randn(N), [N]],
          hidden: [randn(N * H), [N, H]], weight: [randn(V * H, 0.5), [V, H]], targets: [targets, [N]],
          old: [lp0, [N]], ref: [lp0.map((x) => x + 0.3), [N]], roll: [lp0.map((x) => x - 0.2), [N]], adv: [new Float32Array([1.5, -2, 0.3, 1]), [B]], mask: [mask, [N]],
        },
        (be, t) => be.linearGrpoLoss(t.dh, t.dw, t.stats, t.lp, t.ent, t.hidden, t.weight, t.targets, i % 2 ? null : t.old, t.ref, t.roll, t.adv, t.mask, 0.8, o),
        ["dh", "dw", "stats"],
        2e-4,
      );
    });

  it("sample: greedy is the argmax (lowest index on ties)", async () => {
    const [B, V] = [5, 3001];
    const logits = randn(B * V, 3);
    logits[2 * V + 10] = 50;
    logits[2 * V + 20] = 50;
    await compare({ ids: [new Int32Array(B), [B]], logits: [logits, [B, V]] }, (be, t) => be.sample(t.ids, t.logits, new Uint32Array(B), { temperature: 1, topK: 0, topP: 1, minP: 0, greedy: true }), ["ids"]);
  });

  it("sample: the same seeds draw the same tokens as the CPU sampler", async () => {
    const [B, V] = [64, 5003];
    const logits = randn(B * V, 4);
    const seeds = Uint32Array.from({ length: B }, (_, b) => 1000 + b);
    const ids: Record<string, Int32Array> = {};
    for (const be of [cpu, cuda] as Backend[]) {
      const lt = be.upload(logits, [B, V]), it = be.zeros([B], "i32");
      be.sample(it, lt, seeds, { temperature: 0.9, topK: 50, topP: 0.95, minP: 0.01 });
      ids[be.name] = (await be.read(it)) as Int32Array;
      lt.dispose();
      it.dispose();
    }
    // The CUDA draw respects top-k by itself (a token ranked >= 50 by logit is never drawn)...
    for (let b = 0; b < B; b++) {
      const row = logits.subarray(b * V, (b + 1) * V);
      expect(row.filter((x) => x > row[ids.cuda[b]]).length).toBeLessThan(50);
    }
    // ...and, with the same uniform and the same kept set, matches the CPU but for float
    // rounding at a bucket edge.
    let same = 0;
    for (let b = 0; b < B; b++) same += ids.cpu[b] === ids.cuda[b] ? 1 : 0;
    expect(same).toBeGreaterThanOrEqual(B - 2);
  });

  it("sample: truncation is respected and draws follow the truncated distribution (chi-square)", async () => {
    const V = 12;
    const row = Float32Array.from({ length: V }, (_, j) => Math.log(j + 1)); // p proportional to j + 1
    const B = emulated ? 500 : 6000;
    const logits = new Float32Array(B * V);
    for (let b = 0; b < B; b++) logits.set(row, b * V);
    const seeds = Uint32Array.from({ length: B }, (_, b) => b * 2654435761);
    const lt = cuda.upload(logits, [B, V]), ids = cuda.zeros([B], "i32");
    // top-k 6 keeps tokens 6..11; top-p 0.8 of that set keeps the smallest head reaching 80%.
    const kept = [11, 10, 9, 8, 7, 6];
    const w = kept.map((j) => j + 1);
    const total = w.reduce((a, b) => a + b, 0);
    let acc = 0, cut = 0;
    while (acc < 0.8 * total) acc += w[cut++];
    const support = kept.slice(0, cut);
    cuda.sample(ids, lt, seeds, { temperature: 1, topK: 6, topP: 0.8, minP: 0 });
    const got = (await cuda.read(ids)) as Int32Array;
    const counts = new Map<number, number>();
    for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const id of counts.keys()) expect(support).toContain(id);
    const mass = support.reduce((a, j) => a + j + 1, 0);
    let chi2 = 0;
    for (const j of support) {
      const expected = (B * (j + 1)) / mass;
      chi2 += ((counts.get(j) ?? 0) - expected) ** 2 / expected;
    }
    // df = support.length - 1 <= 5: the 99.9% quantile is 20.5.
    expect(chi2).toBeLessThan(20.5);
    lt.dispose();
    ids.dispose();
  });
});
