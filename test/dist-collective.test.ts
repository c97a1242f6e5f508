// The TCP collective on loopback: reductions equal the rank-ordered float32 sum on every rank,
// and a rank that dies or hangs makes the others fail with an error that names it, not hang.
import { fork } from "node:child_process";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { broadcastJson } from "../src/distributed/collective.js";
import { TcpCollective } from "../src/distributed/tcp.js";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

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
