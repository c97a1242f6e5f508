// Rank 0's training state on every rank: parameters (policy and reference) and AdamW moments,
// bit for bit. Called at start and on resume, so ranks never drift from different files, seeds
// or disks; afterwards identical all-reduced gradients keep them identical.
import type { Backend, Tensor } from "../backend/backend.js";
import type { Model } from "../model/model.js";
import type { AdamW, OptimizerState } from "../model/optim.js";
import { broadcastJson, type Collective } from "./collective.js";

/** Broadcasts tensors from rank 0 into the same tensors on every rank (one message). */
export async function broadcastTensors(c: Collective, be: Backend, tensors: Tensor[]): Promise<void> {
  const total = tensors.reduce((n, t) => n + t.size, 0);
  let flat: Float32Array | null = null;
  if (c.rank === 0) {
    flat = new Float32Array(total);
    let off = 0;
    for (const t of tensors) {
      flat.set((await be.read(t)) as Float32Array, off);
      off += t.size;
    }
  }
  const bytes = await c.broadcastBytes(flat && new Uint8Array(flat.buffer));
  if (c.rank === 0) return;
  if (bytes.byteLength !== total * 4) throw new Error(`rank 0 sent ${bytes.byteLength / 4} values, this rank's model has ${total}: the ranks loaded different models`);
  const values = new Float32Array(total);
  new Uint8Array(values.buffer).set(bytes);
  let off = 0;
  for (const t of tensors) {
    be.write(t, values.subarray(off, off + t.size));
    off += t.size;
  }
}

const byName = (m: Map<string, Tensor>) => [...m.keys()].sort().map((k) => m.get(k)!);

/** Makes every rank's policy, reference and optimizer equal to rank 0's. */
export async function syncFromRankZero(c: Collective, model: Model, optimizer: AdamW, ref: Model | null): Promise<void> {
  if (c.worldSize === 1) return;
  const be = model.backend;
  await broadcastTensors(c, be, byName(model.params));
  if (ref) await broadcastTensors(c, be, byName(ref.params));
  // Moments exist only for parameters already updated (none before the first step).
  const mine = c.rank === 0 ? await optimizer.exportState() : null;
  const head = await broadcastJson(c, mine ? { step: mine.step, names: [...mine.m.keys()].sort() } : undefined);
  const state: OptimizerState = { step: head.step, m: new Map(), v: new Map() };
  for (const which of ["m", "v"] as const) {
    const tensors = head.names.map((name) => {
      const p = model.params.get(name);
      if (!p) throw new Error(`rank 0's optimizer has moments for ${name}, which this rank's model lacks`);
      return be.upload(mine ? mine[which].get(name)! : new Float32Array(p.size), p.shape);
    });
    try {
      await broadcastTensors(c, be, tensors);
      for (let i = 0; i < tensors.length; i++) state[which].set(head.names[i], (await be.read(tensors[i])) as Float32Array);
    } finally {
      for (const t of tensors) t.dispose();
    }
  }
  if (c.rank !== 0) optimizer.loadState(state);
}
