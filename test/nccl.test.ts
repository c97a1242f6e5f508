// NCCL in the addon (native/addon/nccl_binding.cpp). Here libnccl.so.2 is absent, so the loading
// story runs: the five NcclOps functions exist, nccl_info says why NCCL is unusable, ncclOpsOf
// keeps the TCP all-reduce. When test/cuda_emu/build.sh has built the CUDA emulator and the
// fake NCCL (npm run test:cuda-emu), the calls themselves run through ANVIL_NCCL_LIB, with one
// rank and with two ranks as processes.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import type { Backend } from "../src/backend/backend.js";
import { cudaInfo } from "../src/backend/cuda.js";
import { freePort } from "../src/distributed/launch.js";
import { loadAddon } from "../src/backend/native.js";
import { ncclOpsOf, type NcclOps } from "../src/distributed/nccl.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const addonPath = process.env.ANVIL_ADDON ?? join(root, "build", "Release", "anvil.node");
const addon = loadAddon() as unknown as Partial<NcclOps>;
const built = cudaInfo().built;
const emuCuda = join(root, "build", "emu", "libanvil_cuda_emu.so");
const fakeNccl = join(root, "build", "emu", "libnccl_fake.so");
const haveFake = built && existsSync(emuCuda) && existsSync(fakeNccl);
if (!haveFake) console.warn("[nccl.test] fake-NCCL calls skipped: run `npm run test:cuda-emu` (test/cuda_emu/build.sh) to build them");

/** Runs `body` (CommonJS, `a` = the addon) in a fresh process, so the library is loaded anew; returns its JSON. */
function inChild(body: string, env: Record<string, string>): any {
  const script = `const a = require(${JSON.stringify(addonPath)}); const out = {}; ${body}; console.log(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { env: { ...process.env, ...env }, encoding: "utf8" }));
}

describe("NCCL exports without libnccl", () => {
  it("exports the five functions nccl.ts expects", () => {
    for (const f of ["nccl_info", "nccl_getUniqueId", "nccl_commInitRank", "nccl_allReduceSum", "nccl_commDestroy"] as const)
      expect(typeof addon[f], f).toBe("function");
  });

  it("nccl_info reports not loaded, with the reason, and never throws", () => {
    const info = addon.nccl_info!();
    if (info.loaded) return; // a machine with NCCL installed
    expect(info).toMatchObject({ loaded: false, version: 0 });
    expect(info.error).toMatch(built ? /cannot load NCCL from libnccl\.so\.2: .*ANVIL_NCCL_LIB/ : /without CUDA/);
    expect(addon.nccl_info!()).toEqual(info); // loaded once
  });

  it("the other calls throw that reason instead of crashing", () => {
    if (addon.nccl_info!().loaded) return;
    const reason = addon.nccl_info!().error!;
    expect(() => addon.nccl_getUniqueId!()).toThrow(reason);
    expect(() => addon.nccl_commInitRank!(new Uint8Array(128), 2, 0)).toThrow(reason);
  });

  it("checks arguments before touching NCCL", () => {
    expect(() => addon.nccl_commInitRank!(new Uint8Array(16), 2, 0)).toThrow(RangeError);
    expect(() => addon.nccl_commInitRank!(new Uint8Array(128), 2, 2)).toThrow(/rank must be below worldSize/);
    expect(() => addon.nccl_allReduceSum!(123n, 456n, 4)).toThrow(/not a live NCCL communicator/);
    expect(() => addon.nccl_allReduceSum!(7 as unknown as bigint, 456n, 4)).toThrow(TypeError);
    expect(() => addon.nccl_commDestroy!(123n)).not.toThrow(); // unknown or destroyed: a no-op
  });

  it("ncclOpsOf keeps CUDA on the TCP all-reduce", () => {
    const cuda = { name: "cuda", addon } as unknown as Backend;
    expect(ncclOpsOf(cuda)).toBeNull();
  });

  it.skipIf(!built)("ANVIL_NCCL_LIB names the library, and a missing one is reported by path", () => {
    const out = inChild("out.info = a.nccl_info();", { ANVIL_NCCL_LIB: "/nonexistent/libnccl.so.2" });
    expect(out.info.loaded).toBe(false);
    expect(out.info.error).toContain("cannot load NCCL from /nonexistent/libnccl.so.2");
  });

  it.skipIf(!built)("a library that is not NCCL is refused by name", () => {
    const out = inChild("out.info = a.nccl_info();", { ANVIL_NCCL_LIB: "libc.so.6" });
    expect(out.info).toEqual({ loaded: false, version: 0, error: "libc.so.6 has no ncclGetVersion: not an NCCL 2 library" });
  });
});

describe.skipIf(!haveFake)("NCCL calls, on the CUDA emulator and a fake NCCL", () => {
  const env = (log: string, extra: Record<string, string> = {}) => ({
    ANVIL_CUDA_LIB: emuCuda,
    ANVIL_NCCL_LIB: fakeNccl,
    FAKE_NCCL_LOG: log,
    FAKE_NCCL_DIR: dirname(log),
    ...extra,
  });
  const setup = `
    const id = a.nccl_getUniqueId();
    out.idLength = id.length;
    const comm = a.nccl_commInitRank(id, 1, 0);
    const host = Float32Array.from([1, -2, 3.5, 4, 5]);
    const p = a.cuda_malloc(host.byteLength);
    a.cuda_upload(p, host);`;

  it("makes a communicator, all-reduces f32 sums in place on the ops' stream, aborts on destroy", () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-nccl-"));
    try {
      const log = join(dir, "calls.log");
      const out = inChild(
        `out.info = a.nccl_info(); ${setup}
         a.nccl_allReduceSum(comm, p, host.length);
         a.nccl_allReduceSum(comm, p, 0);
         a.cuda_sync();
         const back = new Float32Array(host.length);
         a.cuda_download(back, p);
         out.back = Array.from(back);
         a.nccl_commDestroy(comm);
         a.nccl_commDestroy(comm);
         try { a.nccl_allReduceSum(comm, p, 1); } catch (e) { out.afterDestroy = e.message; }
         const nowhere = new Uint8Array(128);
         nowhere.set(Buffer.from("/nonexistent/fake-nccl"));
         try { a.nccl_commInitRank(nowhere, 2, 1); } catch (e) { out.badId = e.message; }`,
        env(log),
      );
      expect(out.info).toEqual({ loaded: true, version: 22304, error: null });
      expect(out.idLength).toBe(128);
      expect(out.back).toEqual([1, -2, 3.5, 4, 5]);
      expect(out.afterDestroy).toMatch(/not a live NCCL communicator/);
      // NCCL's own message comes through: result string, code, and ncclGetLastError.
      expect(out.badId).toBe("nccl_commInitRank: ncclCommInitRank: unhandled system error (2): fake NCCL: cannot write /nonexistent/fake-nccl/join.1");
      // ncclFloat32 = 7, ncclSum = 0, cudaStreamLegacy = 0x1; count 0 enqueues nothing.
      expect(readFileSync(log, "utf8").trim().split("\n")).toEqual([
        "init nranks=1 rank=0",
        "allreduce count=5 datatype=7 op=0 stream=0x1 inplace=1",
        "abort",
        "init nranks=2 rank=1",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("throws NCCL's asynchronous error (a dead peer) instead of enqueueing", () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-nccl-"));
    try {
      const out = inChild(`${setup} try { a.nccl_allReduceSum(comm, p, host.length); } catch (e) { out.error = e.message; }`, env(join(dir, "calls.log"), { FAKE_NCCL_ASYNC_ERROR: "6", ANVIL_NCCL_WATCHDOG_MS: "0" }));
      expect(out.error).toMatch(/NCCL communicator failed \(a rank died or its link broke\): remote process exited .* \(6\): fake NCCL: peer connection lost/);
      expect(readFileSync(join(dir, "calls.log"), "utf8")).not.toContain("allreduce");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a watchdog aborts a failed communicator while JS waits, and the next all-reduce throws why", () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-nccl-"));
    try {
      const log = join(dir, "calls.log");
      // The JS thread blocks (as in a cuda_sync waiting on a dead peer) while the watchdog polls.
      const out = inChild(
        `${setup} Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
         try { a.nccl_allReduceSum(comm, p, host.length); } catch (e) { out.error = e.message; }
         a.nccl_commDestroy(comm);`,
        env(log, { FAKE_NCCL_ASYNC_ERROR: "6", ANVIL_NCCL_WATCHDOG_MS: "20" }),
      );
      expect(out.error).toMatch(/^nccl_allReduceSum: NCCL communicator failed .*\(6\): fake NCCL: peer connection lost; aborted by the watchdog$/);
      // Aborted once, by the watchdog; destroy after that has nothing left to free.
      expect(readFileSync(log, "utf8").trim().split("\n")).toEqual(["init nranks=1 rank=0", "abort"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Two ranks as processes, through the compiled TypeScript (dist/, as dist-train.test.ts): the TCP
  // collective bootstraps NCCL, whose sums land in the CUDA tensors.
  const dist = (f: string) => pathToFileURL(join(root, "dist", "src", f)).href;
  it.skipIf(!existsSync(join(root, "dist", "src", "distributed", "nccl.js")))("two ranks: withDeviceCollective picks NCCL and all-reduces the tensors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "anvil-nccl-"));
    try {
      const port = await freePort();
      const script = `
        import { TcpCollective } from ${JSON.stringify(dist("distributed/tcp.js"))};
        import { CudaBackend } from ${JSON.stringify(dist("backend/cuda.js"))};
        import { NcclCollective, withDeviceCollective } from ${JSON.stringify(dist("distributed/nccl.js"))};
        const rank = Number(process.env.RANK);
        const host = await TcpCollective.connect({ rank, worldSize: 2, host: "127.0.0.1", port: ${port}, timeoutMs: 30000 });
        const be = await CudaBackend.create();
        const dp = await withDeviceCollective(host, be);
        const a = be.upload(Float32Array.from([1, 2, 3], (x) => x * (rank + 1)), [3]);
        const b = be.upload(Float32Array.of(rank === 0 ? 0.5 : 0.25), [1]);
        await dp.allReduceTensors(be, [a, b]);
        const out = { nccl: dp instanceof NcclCollective, a: Array.from(await be.read(a)), b: Array.from(await be.read(b)) };
        await dp.barrier();
        dp.close();
        console.log(JSON.stringify(out));`;
      const outs = await Promise.all(
        [0, 1].map(
          (rank) =>
            new Promise<any>((done, fail) => {
              const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
                env: { ...process.env, ...env(join(dir, `rank${rank}.log`)), RANK: String(rank) },
              });
              let stdout = "";
              let stderr = "";
              child.stdout.on("data", (d) => (stdout += d));
              child.stderr.on("data", (d) => (stderr += d));
              child.on("close", (code) => (code === 0 ? done(JSON.parse(stdout)) : fail(new Error(`rank ${rank} exited ${code}: ${stderr}`))));
            }),
        ),
      );
      for (const out of outs) expect(out).toEqual({ nccl: true, a: [3, 6, 9], b: [0.75] });
      expect(readFileSync(join(dir, "rank1.log"), "utf8").trim().split("\n")).toEqual([
        "init nranks=2 rank=1",
        "allreduce count=3 datatype=7 op=0 stream=0x1 inplace=1",
        "allreduce count=1 datatype=7 op=0 stream=0x1 inplace=1",
        "abort",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
