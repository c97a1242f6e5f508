// AdamW over a model's parameters, or a LoRA adapter's (anything Trainable), (backend.adamw, one fused update per tensor), with global
// gradient-norm clipping and a linear-warmup + cosine learning-rate schedule.
//
// Moments are allocated on first update of a parameter. A parameter without a gradient
// tensor (never touched by backward) is skipped, as in PyTorch (grad None).
import type { Tensor } from "../backend/backend.js";
import type { Trainable } from "./model.js";

export type LrSchedule = "cosine" | "linear" | "constant";

export interface AdamWConfig {
  /** Peak learning rate, reached at the end of warmup. Typical: 1e-6..1e-5 for RL, 1e-4..1e-3 for tiny models. */
  lr: number;
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). Lower (0.95) adapts faster to changing gradient scales. */
  beta2?: number;
  /** Added to sqrt(v) for stability (default 1e-8). */
  eps?: number;
  /**
   * Decoupled weight decay (Loshchilov & Hutter 2019), applied as lr * wd * param (default 0).
   * Only to matrices (embeddings, projections): norms and biases are never decayed.
   */
  weightDecay?: number;
  /** Steps of linear warmup from 0 to lr (default 0). */
  warmupSteps?: number;
  /** Schedule after warmup (default "cosine"): cosine or linear decay to minLr at totalSteps, or constant. */
  schedule?: LrSchedule;
  /** Length of the schedule; required for cosine / linear. After it the rate stays at minLr. */
  totalSteps?: number;
  /** Floor of the decay (default 0). */
  minLr?: number;
  /** Clip the global L2 norm of all gradients to this value; 0 = off (default 1.0). */
  maxGradNorm?: number;
}

export interface ResolvedAdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  warmupSteps: number;
  schedule: LrSchedule;
  totalSteps: number;
  minLr: number;
  maxGradNorm: number;
}

export function resolveAdamWConfig(c: AdamWConfig): ResolvedAdamWConfig {
  const r: ResolvedAdamWConfig = {
    lr: c.lr,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    eps: c.eps ?? 1e-8,
    weightDecay: c.weightDecay ?? 0,
    warmupSteps: c.warmupSteps ?? 0,
    schedule: c.schedule ?? "cosine",
    totalSteps: c.totalSteps ?? 0,
    minLr: c.minLr ?? 0,
    maxGradNorm: c.maxGradNorm ?? 1.0,
  };
  if (!(r.lr >= 0 && Number.isFinite(r.lr))) throw new RangeError(`lr must be a finite number >= 0, got ${r.lr}`);
  if (!(r.beta1 >= 0 && r.beta1 < 1)) throw new RangeError(`beta1 must be in [0, 1), got ${r.beta1}`);
  if (!(r.beta2 >= 0 && r.beta2 < 1)) throw new RangeError(`beta2 must be in [0, 1), got ${r.beta2}`);
  if (!(r.eps > 0)) throw new RangeError(`eps must be > 0, got ${r.eps}`);
  if (!(r.weightDecay >= 0)) throw new RangeError(`weightDecay must be >= 0, got ${r.weightDecay}`);
  if (!Number.isInteger(r.warmupSteps) || r.warmupSteps < 0) throw new RangeError(`warmupSteps must be an integer >= 0, got ${r.warmupSteps}`);
  if (!["cosine", "linear", "constant"].includes(r.schedule)) throw new TypeError(`schedule must be "cosine", "linear" or "constant", got ${JSON.stringify(r.schedule)}`);
  if (r.schedule !== "constant" && (!Number.isInteger(r.totalSteps) || r.totalSteps < 1))
    throw new RangeError(`totalSteps (an integer >= 1) is required for the ${r.schedule} schedule, got ${c.totalSteps}`);
  if (!(r.minLr >= 0 && r.minLr <= r.lr)) throw new RangeError(`minLr must be in [0, lr], got ${r.minLr}`);
  if (!(r.maxGradNorm >= 0)) throw new RangeError(`maxGradNorm must be >= 0 (0 = off), got ${r.maxGradNorm}`);
  return r;
}

/** Learning rate of 1-based step `step`: linear warmup to lr, then the decay to minLr. */
export function learningRate(step: number, c: ResolvedAdamWConfig): number {
  if (c.warmupSteps > 0 && step <= c.warmupSteps) return (c.lr * step) / c.warmupSteps;
  if (c.schedule === "constant") return c.lr;
  const span = Math.max(1, c.totalSteps - c.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - c.warmupSteps) / span));
  const shape = c.schedule === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return c.minLr + (c.lr - c.minLr) * shape;
}

/** Host copy of the optimizer state, for checkpoints. */
export interface OptimizerState {
  /** Completed update steps. */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface StepResult {
  /** Learning rate used. */
  lr: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  /** Whether the gradients were scaled down by clipping. */
  clipped: boolean;
  /** True when the norm was NaN/inf: parameters and moments were left untouched. */
  skipped: boolean;
}

export class AdamW {
  readonly config: ResolvedAdamWConfig;
  /** Completed update steps (the next update uses step + 1 for bias correction). */
  step = 0;
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();

  constructor(
    /** The parameters it updates: a Model, or model.trainable (the adapter under LoRA). */
    readonly model: Trainable,
    config: AdamWConfig,
  ) {
    this.config = resolveAdamWConfig(config);
  }

  /** Learning rate the next step() will use. */
  get nextLr(): number {
    return learningRate(this.step + 1, this.config);
  }

  /** Global L2 norm of all current gradients (one host read). */
  async gradNorm(): Promise<number> {
    const be = this.model.backend;
    const acc = be.zeros([1]);
    try {
      for (const g of this.model.grads.values()) be.sumSquares(acc, g);
      return Math.sqrt((await be.read(acc))[0]);
    } finally {
      acc.dispose();
    }
  }

  /**
   * One update from model.grads: clip to maxGradNorm (scaling the gradients in place), then
   * AdamW on every parameter that has a gradient. Does not zero the gradients.
   */
  async update(): Promise<StepResult> {
    const be = this.model.backend;
    const c = this.config;
    const gradNorm = await this.gradNorm();
    const lr = learningRate(this.step + 1, c);
    if (!Number.isFinite(gradNorm)) return { lr, gradNorm, clipped: false, skipped: true };
    let clipped = false;
    if (c.maxGradNorm > 0 && gradNorm > c.maxGradNorm) {
      const s = c.maxGradNorm / (gradNorm + 1e-6);
      for (const g of this.model.grads.values()) be.scale(g, s);
      clipped = true;
    }
    this.step++;
    for (const [name, g] of this.model.grads) {
      const p = this.model.params.get(name)!;
      const [m, v] = this.moments(name, p);
      const weightDecay = p.shape.length >= 2 ? c.weightDecay : 0;
      be.adamw(p, g, m, v, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay, step: this.step });
    }
    return { lr, gradNorm, clipped, skipped: false };
  }

  private moments(name: string, p: Tensor): [Tensor, Tensor] {
    let m = this.m.get(name);
    let v = this.v.get(name);
    if (!m || !v) {
      m = this.model.backend.zeros(p.shape);
      v = this.model.backend.zeros(p.shape);
      this.m.set(name, m);
      this.v.set(name, v);
    }
    return [m, v];
  }

  async exportState(): Promise<OptimizerState> {
    const be = this.model.backend;
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, t] of this.m) m.set(name, (await be.read(t)) as Float32Array);
    for (const [name, t] of this.v) v.set(name, (await be.read(t)) as Float32Array);
    return { step: this.step, m, v };
  }

  loadState(state: OptimizerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new RangeError(`optimizer state: step must be an integer >= 0, got ${state.step}`);
    for (const [name, data] of state.m) {
      const p = this.model.params.get(name);
      if (!p) throw new Error(`optimizer state: moment for unknown parameter ${name}`);
      const vd = state.v.get(name);
      if (!vd) throw new Error(`optimizer state: ${name} has a first moment but no second moment`);
      if (data.length !== p.size || vd.length !== p.size) throw new RangeError(`optimizer state: ${name} moments have ${data.length}/${vd.length} elements, parameter has ${p.size}`);
      const [m, v] = this.moments(name, p);
      this.model.backend.write(m, data);
      this.model.backend.write(v, vd);
    }
    this.step = state.step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
