// A heavy native call must not freeze an embedding application: matmulAsync runs on a libuv
// worker, so timers keep firing while it multiplies; the synchronous matmul blocks the event
// loop for its whole duration. Lag = the longest gap between 5 ms interval ticks.
import { performance } from "node:perf_hooks";
import { beforeAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../src/backend/cpu.js";

let be: CpuBackend;
beforeAll(() => {
  be = new CpuBackend();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs job while a 5 ms interval ticks; returns the job's duration and the largest tick gap (ms). */
async function measureLag(job: () => Promise<void> | void): Promise<{ lag: number; duration: number }> {
  let last = performance.now();
  let lag = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    lag = Math.max(lag, now - last);
    last = now;
  }, 5);
  await sleep(30); // let the interval settle
  const t0 = performance.now();
  await job();
  const duration = performance.now() - t0;
  await sleep(30); // the tick right after a blocking call records its gap
  clearInterval(timer);
  return { lag, duration };
}

function rand(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 0.5;
  return x;
}

describe("event loop", () => {
  it("matmulAsync keeps the event loop responsive where matmul blocks it", async () => {
    // Size the job for ~0.6 s on this machine, whatever its load: time a small matmul first.
    const n0 = 384;
    const a0 = rand(n0 * n0), o0 = new Float32Array(n0 * n0);
    be.native.matmul(o0, a0, a0, n0, n0, n0, false, false, false, 1);
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) be.native.matmul(o0, a0, a0, n0, n0, n0, false, false, false, 1);
    const flopsPerMs = (3 * 2 * n0 ** 3) / (performance.now() - t0);
    const n = Math.min(4096, Math.max(512, Math.round(Math.cbrt((600 * flopsPerMs) / 2) / 16) * 16));

    // On a shared machine a burst of load can stretch one measurement (a short sync job, a late
    // timer): measure up to 3 times. A blocking matmulAsync fails every attempt (its lag is its
    // duration), so the retries cannot hide the property under test.
    let ok = false;
    for (let attempt = 0; attempt < 3 && !ok; attempt++) {
      const a = rand(n * n), b = rand(n * n), outSync = new Float32Array(n * n), outAsync = new Float32Array(n * n);
      const sync = await measureLag(() => be.native.matmul(outSync, a, b, n, n, n, false, true, false, 1));
      const async_ = await measureLag(() => be.native.matmulAsync(outAsync, a, b, n, n, n, false, true, false, 1));
      console.log(
        `matmul ${n}^3: sync ${sync.duration.toFixed(0)} ms, event-loop lag ${sync.lag.toFixed(0)} ms | ` +
          `async ${async_.duration.toFixed(0)} ms, lag ${async_.lag.toFixed(0)} ms`,
      );
      // Same numbers either way (same kernel, same thread count). A plain loop: deep equality
      // on 10M elements would take longer than the multiply.
      let mismatches = 0;
      for (let i = 0; i < outSync.length; i++) if (outSync[i] !== outAsync[i]) mismatches++;
      expect(mismatches).toBe(0);
      // Blocking: the loop stalls for about the whole multiply.
      expect(sync.lag).toBeGreaterThan(0.8 * sync.duration);
      // Async: ticks keep coming. Bounds are loose because the machine is shared.
      ok = async_.lag < 200 && async_.lag < sync.lag / 3;
    }
    expect(ok, "matmulAsync stalled the event loop in every attempt").toBe(true);
  });

  it("concurrent matmulAsync jobs each get the right answer", async () => {
    const M = 67, N = 45, K = 129;
    const jobs = [0, 1, 2, 3].map((j) => {
      const a = rand(M * K).map((x) => x * (j + 1)), b = rand(K * N);
      const want = new Float32Array(M * N);
      be.native.matmul(want, a, b, M, N, K, false, false, false, 1);
      const out = new Float32Array(M * N);
      return { promise: be.native.matmulAsync(out, a, b, M, N, K, false, false, false, 1), out, want };
    });
    await Promise.all(jobs.map((j) => j.promise));
    for (const j of jobs) expect(j.out).toEqual(j.want);
  });
});
