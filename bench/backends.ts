// Every kernel on every available backend, side by side, through the Backend interface:
// the same call a user's code makes. On a machine without a GPU the WebGPU figures come
// from Mesa's lavapipe, i.e. they are CPU figures through a Vulkan emulation layer; on a
// machine with a GPU the same command measures the GPU.
//
//   anvil bench backends [--quick]
import type { Backend, Tensor } from "../src/backend/backend.js";
import { GRPO_STATS } from "../src/backend/backend.js";
import { createBackend } from "../src/backend/index.js";
import { timeItAsync, timeWindow, type BenchContext } from "./harness.js";

export interface BackendsBenchOptions {
  /** Backends to compare (default: cpu and webgpu, cuda when usable). */
  backends?: ("cpu" | "webgpu" | "cuda")[];
}

interface Case {
  name: string;
  flops?: number;
  bytes?: number;
  /** Allocates inputs on the backend and returns the op to time (plus cleanup). */
  setup(be: Backend): { run(): void; free(): void };
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s / 4294967296 - 0.5) * scale;
  }
  return x;
}
const ints = (n: number, hi: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919) % hi);

function cases(quick: boolean): Case[] {
  const N = quick ? 512 : 2048; // tokens
  const C = 512;
  const V = quick ? 8000 : 32000;
  const [B, T, nh, nkv, hd] = quick ? [2, 128, 8, 2, 64] : [4, 256, 8, 2, 64];
  const up = (be: Backend, shape: number[], seed: number, scale = 1) => be.upload(rand(shape.reduce((a, b) => a * b), seed, scale), shape);
  const free = (...ts: Tensor[]) => () => ts.forEach((t) => t.dispose());
  return [
    {
      name: `matmul ${N}x${C}x${C} b^T`,
      flops: 2 * N * C * C,
      setup: (be) => {
        const a = up(be, [N, C], 1), w = up(be, [C, C], 2), o = be.zeros([N, C]);
        return { run: () => be.matmul(o, a, w, { transB: true }), free: free(a, w, o) };
      },
    },
    {
      name: `rmsnorm fwd ${N}x${C}`,
      bytes: 8 * N * C,
      setup: (be) => {
        const x = up(be, [N, C], 3), w = up(be, [C], 4), o = be.zeros([N, C]), r = be.zeros([N]);
        return { run: () => be.rmsnormForward(o, r, x, w, 1e-6), free: free(x, w, o, r) };
      },
    },
    {
      name: `swiglu fwd ${N}x${4 * C}`,
      bytes: 12 * N * 4 * C,
      setup: (be) => {
        const g = up(be, [N, 4 * C], 5), u = up(be, [N, 4 * C], 6), o = be.zeros([N, 4 * C]);
        return { run: () => be.swigluForward(o, g, u), free: free(g, u, o) };
      },
    },
    {
      name: `rope fwd ${B * T}x${nh}x${hd}`,
      bytes: 8 * B * T * nh * hd,
      setup: (be) => {
        const x = up(be, [B * T, nh, hd], 7), o = be.zeros([B * T, nh, hd]), p = be.upload(ints(B * T, T), [B * T]);
        return { run: () => be.ropeForward(o, x, p, 1e6), free: free(x, o, p) };
      },
    },
    {
      name: `attention fwd B${B} T${T} nh${nh}/${nkv} hd${hd}`,
      flops: 2 * B * nh * T * T * hd,
      setup: (be) => {
        const q = up(be, [B, T, nh, hd], 8), k = up(be, [B, T, nkv, hd], 9), v = up(be, [B, T, nkv, hd], 10);
        const o = be.zeros([B, T, nh, hd]), l = be.zeros([B, nh, T]);
        return { run: () => be.attentionForward(o, l, q, k, v), free: free(q, k, v, o, l) };
      },
    },
    {
      name: `attention bwd B${B} T${T} nh${nh}/${nkv} hd${hd}`,
      flops: 5 * B * nh * T * T * hd,
      setup: (be) => {
        const q = up(be, [B, T, nh, hd], 8), k = up(be, [B, T, nkv, hd], 9), v = up(be, [B, T, nkv, hd], 10);
        const o = be.zeros([B, T, nh, hd]), l = be.zeros([B, nh, T]), d = up(be, [B, T, nh, hd], 11);
        const dq = be.zeros([B, T, nh, hd]), dk = be.zeros([B, T, nkv, hd]), dv = be.zeros([B, T, nkv, hd]);
        be.attentionForward(o, l, q, k, v);
        return { run: () => be.attentionBackward(dq, dk, dv, d, q, k, v, o, l), free: free(q, k, v, o, l, d, dq, dk, dv) };
      },
    },
    {
      name: `sample top-p 0.9 B64 V${V}`,
      bytes: 4 * 64 * V,
      setup: (be) => {
        const x = up(be, [64, V], 12, 8), ids = be.zeros([64], "i32");
        const seeds = Uint32Array.from({ length: 64 }, (_, i) => i + 1);
        return { run: () => be.sample(ids, x, seeds, { temperature: 1, topK: 0, topP: 0.9, minP: 0 }), free: free(x, ids) };
      },
    },
    {
      name: `linear logprob fwd N${N / 2} H${C} V${V}`,
      flops: 2 * (N / 2) * C * V,
      setup: (be) => {
        const h = up(be, [N / 2, C], 13, 0.5), w = up(be, [V, C], 14, 0.1), t = be.upload(ints(N / 2, V), [N / 2]);
        const lp = be.zeros([N / 2]), en = be.zeros([N / 2]), lse = be.zeros([N / 2]);
        return { run: () => be.linearLogprobForward(lp, en, lse, h, w, t, 1), free: free(h, w, t, lp, en, lse) };
      },
    },
    {
      name: `grpo loss N${64 * 1024}`,
      bytes: 4 * 8 * 64 * 1024,
      setup: (be) => {
        const Bq = 64, Tq = 1024, n = Bq * Tq;
        const lp = up(be, [n], 15, 0.2), old = up(be, [n], 16, 0.2), ref = up(be, [n], 17, 0.2), ent = up(be, [n], 18);
        const adv = up(be, [Bq], 19, 2), mask = be.upload(new Float32Array(n).fill(1), [n]);
        const dlp = be.zeros([n]), den = be.zeros([n]), st = be.zeros([GRPO_STATS.length]);
        const opts = { B: Bq, T: Tq, epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: "k3" as const, entropyCoef: 0.001, tisCap: 0, aggregation: "token-mean" as const };
        return { run: () => be.grpoLoss(dlp, den, st, lp, old, ref, null, ent, adv, mask, opts), free: free(lp, old, ref, ent, adv, mask, dlp, den, st) };
      },
    },
  ];
}

export async function runBackendsBench(ctx: BenchContext, opts: BackendsBenchOptions = {}): Promise<void> {
  const wanted = opts.backends ?? ["cpu", "webgpu", "cuda"];
  const backends: Backend[] = [];
  for (const name of wanted) {
    try {
      backends.push(await createBackend(name));
    } catch (e) {
      ctx.row({ name: "(backend)", impl: name, seconds: NaN, note: `skipped: ${(e as Error).message.split("\n")[0]}` });
    }
  }
  const [minTime, maxTime] = timeWindow(ctx);
  for (const c of cases(ctx.quick)) {
    let cpuSeconds = NaN;
    for (const be of backends) {
      ctx.progress(`${c.name} on ${be.name}`);
      const { run, free } = c.setup(be);
      run(); // warm-up: pipeline compilation on GPU backends
      await be.sync();
      const seconds = await timeItAsync(async () => {
        run();
        await be.sync();
      }, minTime, maxTime);
      free();
      if (be.name === "cpu") cpuSeconds = seconds;
      const soft = be.name === "webgpu" ? " (lavapipe = CPU emulation when no GPU)" : "";
      ctx.row({
        name: c.name,
        impl: be.name,
        seconds,
        gflops: c.flops ? c.flops / seconds / 1e9 : undefined,
        gbps: c.bytes ? c.bytes / seconds / 1e9 : undefined,
        note: be.name === "cpu" ? "" : `${(seconds / cpuSeconds).toFixed(2)}x the cpu time${soft}`,
      });
    }
  }
  for (const be of backends) be.destroy();
}
