// NCCL all-reduce of gradients in device memory, for the CUDA backend.
//
// The addon (native/addon/nccl_binding.cpp) dlopen()s libnccl.so.2, or the path in
// ANVIL_NCCL_LIB, at run time (as it loads libanvil_cuda, so building needs no NCCL) and exports
// NcclOps next to the cuda_* functions; without the library nccl_info() says why and CUDA runs
// all-reduce through host memory over TCP. NCCL is used only when every rank has it, bootstrapped
// by rank 0's unique id sent over the TCP collective (as torch.distributed does through its
// store); host arrays (metrics, setup) keep going over TCP, which also notices a dead rank (NCCL
// has no timeout of its own; the addon's watchdog aborts a communicator when NCCL reports a lost
// peer, so a GPU wait on a dead rank ends and the TCP error surfaces). Tested against a fake NCCL
// (ranks as processes) on the CUDA emulator (test/nccl.test.ts), not yet on real GPUs.
import type { Backend, Tensor } from "../backend/backend.js";
import type { Collective, HostArray, ReduceOp } from "./collective.js";

/** The NCCL functions the addon exports (see above). */
export interface NcclOps {
  /** Loads libnccl.so.2 on first call; never throws. */
  nccl_info(): { loaded: boolean; version: number; error: string | null };
  /** ncclGetUniqueId: the opaque id (128 bytes) rank 0 makes for the communicator. */
  nccl_getUniqueId(): Uint8Array;
  /** ncclCommInitRank on the backend's device; returns once every rank has called it. */
  nccl_commInitRank(uniqueId: Uint8Array, worldSize: number, rank: number): bigint;
  /** ncclAllReduce(ncclFloat32, ncclSum), in place, on the backend's stream; returns once enqueued. */
  nccl_allReduceSum(comm: bigint, ptr: bigint, count: number): void;
  /** ncclCommAbort (ncclCommDestroy before NCCL 2.4): does not wait for work in flight. */
  nccl_commDestroy(comm: bigint): void;
}

/** A tensor in device memory (CudaTensor). */
type DeviceTensor = Tensor & { readonly ptr: bigint };

/** The NCCL functions behind a backend, or null: not CUDA, an addon without NCCL, or no libnccl. */
export function ncclOpsOf(backend: Backend): NcclOps | null {
  if (backend.name !== "cuda") return null;
  const addon = (backend as unknown as { addon?: Partial<NcclOps> }).addon;
  if (typeof addon?.nccl_info !== "function") return null;
  return addon.nccl_info().loaded ? (addon as NcclOps) : null;
}

/**
 * The collective for training on `backend`: NCCL for tensors when every rank has it, else
 * `host`. Every rank calls it at the same point (it is a collective op itself).
 */
export async function withDeviceCollective(host: Collective, backend: Backend, ops: NcclOps | null = ncclOpsOf(backend)): Promise<Collective> {
  if (host.worldSize === 1) return host;
  const [everyRank] = await host.allReduce(Float64Array.of(ops ? 1 : 0), "min");
  if (!everyRank || !ops) return host;
  const id = await host.broadcastBytes(host.rank === 0 ? ops.nccl_getUniqueId() : null);
  // nccl_commInitRank blocks this thread until every rank has joined: make sure every rank holds
  // the id first, so no rank still waits for its bytes from a hub whose event loop is blocked.
  await host.barrier();
  return new NcclCollective(host, ops, ops.nccl_commInitRank(id, host.worldSize, host.rank));
}

export class NcclCollective implements Collective {
  constructor(
    private readonly host: Collective,
    private readonly ops: NcclOps,
    private readonly comm: bigint,
  ) {}
  get rank(): number {
    return this.host.rank;
  }
  get worldSize(): number {
    return this.host.worldSize;
  }
  allReduce<A extends HostArray>(data: A, op?: ReduceOp): Promise<A> {
    return this.host.allReduce(data, op);
  }
  /** Enqueued on the backend's stream: the optimizer's kernels that follow see the sums. */
  async allReduceTensors(_backend: Backend, tensors: Tensor[]): Promise<void> {
    for (const t of tensors) this.ops.nccl_allReduceSum(this.comm, (t as DeviceTensor).ptr, t.size);
  }
  broadcastBytes(data: Uint8Array | null, timeoutMs?: number | null): Promise<Uint8Array> {
    return this.host.broadcastBytes(data, timeoutMs);
  }
  barrier(timeoutMs?: number | null): Promise<void> {
    return this.host.barrier(timeoutMs);
  }
  close(): void {
    this.ops.nccl_commDestroy(this.comm);
    this.host.close();
  }
}
