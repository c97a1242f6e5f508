// The TCP collective on loopback: reductions equal the rank-ordered float32 sum on every rank,
// a rank that dies or hangs makes the others fail with an error that names it, not hang; the
// launch spec from flags and torchrun's environment variables; when NCCL takes the tensors.
import { fork } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { Backend, Tensor } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { broadcastJson } from "../src/distributed/collective.js";
import { NcclCollective, ncclOpsOf, withDeviceCollective, type NcclOps } from "../src/distributed/nccl.js";
import { freePort, resolveDistSpec, withoutNproc } from "../src/distributed/launch.js";
import { TcpCollective } from "../src/distributed/tcp.js";

async function world(n: number, timeoutMs = 5000): Promise<TcpCollective[]> {
  const port = await freePort();
  return Promise.all([...Array(n).keys()].map((rank) => TcpCollective.connect({ rank, worldSize: n, host: "127.0.0.1", port, timeoutMs })));
}

describe("TCP collective", () => {
  it("all-reduces sum/max/min in rank order, broadcasts, on every rank", async () => {
    const cs = await world(3);
    try {
      // Values whose float32 sum depends on the order: rank order 0, 1, 2 is what everyone gets.
      const inputs = [[1e8, 1, -3], [1, 2, 5], [-1e8, 4, 0.5]].map((v) => Float32Array.from(v));
      const expected = Float32Array.from(inputs[0]);
      for (const x of inputs.slice(1)) for (let i = 0; i < 3; i++) expected[i] = Math.fround(expected[i] + x[i]);
      const sums = await Promise.all(cs.map((c, r) => c.allReduce(Float32Array.from(inputs[r]))));
      for (const s of sums) expect([...s]).toEqual([...expected]);
      expect(sums[0][0]).toBe(0); // (1e8 + 1) rounds to 1e8 in float32, then - 1e8
      const maxes = await Promise.all(cs.map((c, r) => c.allReduce(Float64Array.from(inputs[r]), "max")));
      for (const m of maxes) expect([...m]).toEqual([1e8, 4, 5]);
      const mins = await Promise.all(cs.map((c, r) => c.allReduce(Float64Array.from(inputs[r]), "min")));
      for (const m of mins) expect([...m]).toEqual([-1e8, 1, -3]);
      const big = await Promise.all(cs.map((c, r) => c.allReduce(new Float32Array(300_000).fill(r + 1))));
      for (const b of big) expect(b[299_999]).toBe(6);
      const got = await Promise.all(cs.map((c) => broadcastJson(c, c.rank === 0 ? { from: "rank 0" } : undefined)));
      for (const g of got) expect(g).toEqual({ from: "rank 0" });
    } finally {
      for (const c of cs) c.close();
    }
  });

  it("a rank whose process dies fails the others at once, naming it", async () => {
    const port = await freePort();
    // Rank 1 in a child process that joins, then exits without taking part in the next op.
    const child = fork(new URL("./helpers/dist-rank.mjs", import.meta.url).pathname, [String(port)], { stdio: "inherit" });
    const [c0, c2] = await Promise.all([0, 2].map((rank) => TcpCollective.connect({ rank, worldSize: 3, host: "127.0.0.1", port, timeoutMs: 60_000 })));
    const t0 = Date.now();
    const results = await Promise.allSettled([c0.allReduce(new Float32Array(4)), c2.allReduce(new Float32Array(4))]);
    expect(Date.now() - t0).toBeLessThan(10_000); // not the 60 s timeout
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/rank 1 is gone/);
    }
    await expect(c0.barrier()).rejects.toThrow(/rank 1 is gone/);
    child.kill();
  });

  it("a rank that hangs fails the others after the timeout, and they say so", async () => {
    const cs = await world(3, 1500);
    const t0 = Date.now();
    // Rank 2 never calls the op.
    const results = await Promise.allSettled([cs[0].allReduce(new Float32Array(2)), cs[1].allReduce(new Float32Array(2))]);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/no word from rank 2 within 1.5 s/);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/no word from rank 2/);
    for (const c of cs) c.close();
  });

  it("rendezvous fails clearly when a rank never comes, and on mismatched world sizes", async () => {
    const port = await freePort();
    await expect(TcpCollective.connect({ rank: 0, worldSize: 2, host: "127.0.0.1", port, timeoutMs: 800 })).rejects.toThrow(/rank\(s\) 1 did not connect/);
    await expect(TcpCollective.connect({ rank: 1, worldSize: 2, host: "127.0.0.1", port, timeoutMs: 800 })).rejects.toThrow(/cannot reach rank 0/);
    const port2 = await freePort();
    const r = await Promise.allSettled([
      TcpCollective.connect({ rank: 0, worldSize: 2, host: "127.0.0.1", port: port2, timeoutMs: 3000 }),
      TcpCollective.connect({ rank: 1, worldSize: 3, host: "127.0.0.1", port: port2, timeoutMs: 3000 }),
    ]);
    expect(String((r[0] as PromiseRejectedResult).reason)).toMatch(/world size 3, expected 2/);
    expect(String((r[1] as PromiseRejectedResult).reason)).toMatch(/world size 3, expected 2/);
    await expect(TcpCollective.connect({ rank: 2, worldSize: 2, host: "127.0.0.1", port, timeoutMs: 100 })).rejects.toThrow(/rank must be an integer in \[0, 1\]/);
  });
});

describe("launch spec", () => {
  it("reads flags, then torchrun's environment variables; one process without either", () => {
    expect(resolveDistSpec({}, {})).toBeNull();
    expect(resolveDistSpec({ rank: 0, worldSize: 1 }, {})).toBeNull();
    expect(resolveDistSpec({}, { RANK: "1", WORLD_SIZE: "4", MASTER_ADDR: "10.0.0.1", MASTER_PORT: "1234" })).toEqual({ rank: 1, worldSize: 4, host: "10.0.0.1", port: 1234, timeoutMs: 1_800_000 });
    expect(resolveDistSpec({ rank: 2, masterAddr: "node-a:777", distTimeout: 5 }, { RANK: "1", WORLD_SIZE: "4" })).toEqual({ rank: 2, worldSize: 4, host: "node-a", port: 777, timeoutMs: 5000 });
    expect(resolveDistSpec({ rank: 0, worldSize: 2, masterAddr: "[::1]:80" }, {})).toMatchObject({ host: "::1", port: 80 });
    expect(resolveDistSpec({ rank: 0, worldSize: 2, masterAddr: "h" }, {})).toMatchObject({ host: "h", port: 29500 });
  });

  it("rejects incomplete or inconsistent worlds with what to fix", () => {
    expect(() => resolveDistSpec({ rank: 1 }, {})).toThrow(/needs both --rank and --world-size/);
    expect(() => resolveDistSpec({ rank: 2, worldSize: 2, masterAddr: "h:1" }, {})).toThrow(/--rank 2 must be < --world-size 2/);
    expect(() => resolveDistSpec({ rank: 0, worldSize: 2 }, {})).toThrow(/needs rank 0's address: --master-addr host:port/);
    expect(() => resolveDistSpec({}, { RANK: "x", WORLD_SIZE: "2" })).toThrow(/RANK\) must be an integer >= 0, got "x"/);
    expect(() => resolveDistSpec({ rank: 0, worldSize: 2, masterAddr: "h:99999" }, {})).toThrow(/<= 65535/);
  });

  it("drops --nproc from the command line the ranks run", () => {
    expect(withoutNproc(["train", "--nproc", "2", "--steps", "3", "--nproc=4"])).toEqual(["train", "--steps", "3"]);
  });
});

describe("NCCL selection (TypeScript side, against fake NCCL functions; the addon's own in nccl.test.ts)", () => {
  const fakeNccl = (calls: string[]): NcclOps => ({
    nccl_info: () => ({ loaded: true, version: 22000, error: null }),
    nccl_getUniqueId: () => Uint8Array.from({ length: 128 }, (_, i) => i),
    nccl_commInitRank: (id, n, rank) => (calls.push(`init id[5]=${id[5]} n=${n} rank=${rank}`), BigInt(100 + rank)),
    nccl_allReduceSum: (comm, ptr, count) => void calls.push(`allReduce comm=${comm} ptr=${ptr} count=${count}`),
    nccl_commDestroy: (comm) => void calls.push(`destroy ${comm}`),
  });
  const cuda = { name: "cuda" } as Backend;
  const tensor = (ptr: number, size: number) => ({ ptr: BigInt(ptr), size, shape: [size] }) as unknown as Tensor;

  it("uses NCCL for tensors when every rank has it, bootstrapped with rank 0's unique id", async () => {
    const cs = await world(2);
    const calls: string[][] = [[], []];
    const dev = await Promise.all(cs.map((c, r) => withDeviceCollective(c, cuda, fakeNccl(calls[r]))));
    expect(dev.every((d) => d instanceof NcclCollective)).toBe(true);
    await Promise.all(dev.map((d) => d.allReduceTensors(cuda, [tensor(4096, 10), tensor(8192, 3)])));
    // Host arrays still go over TCP.
    const sums = await Promise.all(dev.map((d, r) => d.allReduce(Float64Array.of(r + 1))));
    expect(sums.map((s) => s[0])).toEqual([3, 3]);
    dev.forEach((d) => d.close());
    expect(calls[1]).toEqual(["init id[5]=5 n=2 rank=1", "allReduce comm=101 ptr=4096 count=10", "allReduce comm=101 ptr=8192 count=3", "destroy 101"]);
    expect(calls[0][0]).toBe("init id[5]=5 n=2 rank=0");
  });

  it("stays on TCP when a rank lacks NCCL, or off CUDA", async () => {
    const cs = await world(2);
    const calls: string[] = [];
    const dev = await Promise.all(cs.map((c, r) => withDeviceCollective(c, cuda, r === 0 ? fakeNccl(calls) : null)));
    expect(dev).toEqual(cs);
    expect(calls).toEqual([]);
    const cpu = new CpuBackend();
    expect(ncclOpsOf(cpu)).toBeNull();
    cpu.destroy();
    cs.forEach((c) => c.close());
  });
});
