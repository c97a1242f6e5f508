// Collective communication between the ranks of a data-parallel run.
//
// The trainer talks to this interface only; implementations:
//   solo   world size 1 (every op is the identity): the single-process path is the same code
//   tcp    a CPU all-reduce over TCP, rank 0 as the hub (tcp.ts): CPU, WebGPU, this machine
//   nccl   device-side all-reduce on CUDA through a run-time-loaded NCCL (nccl.ts)
//
// Every rank calls the same ops in the same order (the trainer's step is the same program on
// every rank); a rank that dies or hangs makes the others fail with an error, never hang.
import type { Backend, Tensor } from "../backend/backend.js";

export type ReduceOp = "sum" | "max" | "min";
export type HostArray = Float32Array | Float64Array;

export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  /** Element-wise reduction of a host array over all ranks, in place; every rank gets the result.
   * Sums are taken in rank order 0, 1, ..., N-1 in the array's precision: deterministic. */
  allReduce<A extends HostArray>(data: A, op?: ReduceOp): Promise<A>;
  /** Sums backend tensors (gradients) over all ranks, in place. */
  allReduceTensors(backend: Backend, tensors: Tensor[]): Promise<void>;
  /** Rank 0's bytes, on every rank (others pass null). timeoutMs as in barrier. */
  broadcastBytes(data: Uint8Array | null, timeoutMs?: number | null): Promise<Uint8Array>;
  /** Waits for every rank. timeoutMs: null waits as long as every peer stays connected
   * (for unbounded work on rank 0 such as the SFT warm start). */
  barrier(timeoutMs?: number | null): Promise<void>;
  /** Closes connections; later ops fail. */
  close(): void;
}

/** World size 1. */
export class SoloCollective implements Collective {
  readonly rank = 0;
  readonly worldSize = 1;
  async allReduce<A extends HostArray>(data: A): Promise<A> {
    return data;
  }
  async allReduceTensors(): Promise<void> {}
  async broadcastBytes(data: Uint8Array | null): Promise<Uint8Array> {
    if (!data) throw new Error("broadcastBytes: rank 0 must pass the data");
    return data;
  }
  async barrier(): Promise<void> {}
  close(): void {}
}

/** Sums tensors through host memory: read all, one flat all-reduce, write back. */
export async function allReduceTensorsOnHost(c: Collective, be: Backend, tensors: Tensor[]): Promise<void> {
  const total = tensors.reduce((n, t) => n + t.size, 0);
  const flat = new Float32Array(total);
  let off = 0;
  for (const t of tensors) {
    flat.set((await be.read(t)) as Float32Array, off);
    off += t.size;
  }
  await c.allReduce(flat, "sum");
  off = 0;
  for (const t of tensors) {
    be.write(t, flat.subarray(off, off + t.size));
    off += t.size;
  }
}

/** Broadcasts a JSON value from rank 0 (others pass undefined). */
export async function broadcastJson<T>(c: Collective, value: T | undefined, timeoutMs?: number | null): Promise<T> {
  const bytes = await c.broadcastBytes(c.rank === 0 ? new TextEncoder().encode(JSON.stringify(value)) : null, timeoutMs);
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}

/** Reduces a record of numbers, each key with its own op (every rank passes the same keys). */
export async function allReduceRecord<K extends string>(c: Collective, values: Record<K, number>, ops: Partial<Record<K, ReduceOp>> = {}): Promise<Record<K, number>> {
  if (c.worldSize === 1) return values;
  const keys = (Object.keys(values) as K[]).sort();
  const out = { ...values };
  for (const op of ["sum", "max", "min"] as const) {
    const mine = keys.filter((k) => (ops[k] ?? "sum") === op);
    if (!mine.length) continue;
    const buf = await c.allReduce(Float64Array.from(mine, (k) => values[k]), op);
    mine.forEach((k, i) => (out[k] = buf[i]));
  }
  return out;
}
