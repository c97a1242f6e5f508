// The addon functions the decoder uses, in TypeScript: the float64 references of
// reference-ops.ts in NativeAddon's names and argument orders (outputs written into the given
// arrays). test/model.test.ts fills in any function the built addon lacks with these, so the
// model graph is testable before every C++ op lands, and `ANVIL_NAIVE_OPS=1` forces them all (a
// reference run independent of native/).
import { CpuBackend } from "../../src/backend/cpu.js";
import type { NativeAddon } from "../../src/backend/native.js";
import { mulberry32 } from "../../src/util/rng.js";
import * as ref from "./reference-ops.js";
import { bf16BitsToF32 } from "../../src/backend/bf16.js";

/** A weight operand as f32 values (bf16 weights arrive as a Uint16Array of bits). */
const f32 = (w: Float32Array | Uint16Array): Float32Array => (w instanceof Uint16Array ? bf16BitsToF32(w) : w);

export const naiveOps: Partial<NativeAddon> = {
  add(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  },
  accumulate(dst, src, alpha, n) {
    for (let i = 0; i < n; i++) dst[i] += alpha * src[i];
  },
  scale(t, alpha, n) {
    for (let i = 0; i < n; i++) t[i] *= alpha;
  },
  sumSquares(out, t, n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += t[i] * t[i];
    out[0] += s;
  },
  embeddingForward(out, ids, table, N, C) {
    const t = f32(table);
    for (let n = 0; n < N; n++) out.set(t.subarray(ids[n] * C, ids[n] * C + C), n * C);
  },
  embeddingBackward(dtable, dout, ids, N, C) {
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) dtable[ids[n] * C + c] += dout[n * C + c];
  },
  matmul(out, a, b, M, N, K, transA, transB, accumulate, alpha) {
    out.set(ref.matmul(a, f32(b), M, N, K, transA, transB, alpha, accumulate ? out : undefined));
  },
  biasAdd(out, bias, N, C) {
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] += bias[c];
  },
  biasBackward(dbias, dout, N, C) {
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dout[n * C + c];
      dbias[c] += s;
    }
  },
  rmsnormForward(out, rstd, inp, weight, N, C, eps) {
    const r = ref.rmsnorm(inp, weight, N, C, eps);
    out.set(r.out);
    rstd.set(r.rstd);
  },
  rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C) {
    const { dinp: di, dw } = ref.rmsnormBackwardFromRstd(dout, inp, weight, rstd, N, C);
    dinp.set(di);
    for (let c = 0; c < C; c++) dweight[c] += dw[c];
  },
  ropeForward(out, inp, pos, N, nh, hd, theta) {
    out.set(ref.rope(inp, pos, N, nh, hd, theta));
  },
  ropeBackward(dinp, dout, pos, N, nh, hd, theta) {
    dinp.set(ref.rope(dout, pos, N, nh, hd, theta, -1));
  },
  attentionForward(out, lse, q, k, v, B, T, nh, nkv, hd) {
    const r = ref.attention(q, k, v, B, T, nh, nkv, hd);
    out.set(r.out);
    lse.set(r.lse);
  },
  attentionBackward(dq, dk, dv, dout, q, k, v, _out, _lse, B, T, nh, nkv, hd) {
    const r = ref.attentionBackward(dout, q, k, v, B, T, nh, nkv, hd);
    dq.set(r.dq);
    dk.set(r.dk);
    dv.set(r.dv);
  },
  attentionDecode(out, q, kCache, vCache, pos, B, Tq, S, nh, nkv, hd) {
    out.set(ref.attentionDecode(q, kCache, vCache, pos, B, Tq, S, nh, nkv, hd));
  },
  kvWrite(cache, x, pos, B, Tq, S, nkv, hd) {
    const row = nkv * hd;
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Tq; t++) cache.set(x.subarray((b * Tq + t) * row, (b * Tq + t + 1) * row), (b * S + pos[b] + t) * row);
  },
  swigluForward(out, gate, up, n) {
    for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  },
  swigluBackward(dgate, dup, dout, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const s = 1 / (1 + Math.exp(-gate[i]));
      dup[i] = dout[i] * gate[i] * s;
      dgate[i] = dout[i] * up[i] * s * (1 + gate[i] * (1 - s));
    }
  },
  crossEntropyForward(loss, logits, targets, N, V) {
    loss.set(ref.logprobFromLogits(logits, targets, N, V, 1).lp.map((lp) => -lp));
  },
  crossEntropyBackward(dlogits, dloss, logits, targets, N, V) {
    dlogits.set(ref.logprobBackward(logits, targets, Array.from(dloss, (d) => -d), new Float64Array(N), N, V, 1));
  },
  gatherRows(out, inp, idx, M, _N, C) {
    for (let m = 0; m < M; m++) out.set(inp.subarray(idx[m] * C, idx[m] * C + C), m * C);
  },
  adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) {
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2 = 1 - Math.pow(beta2, step);
    for (let i = 0; i < n; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
      v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
      const mh = m[i] / bc1;
      const vh = v[i] / bc2;
      param[i] -= lr * (mh / (Math.sqrt(vh) + eps) + weightDecay * param[i]);
    }
  },
  logprobFromLogits(logprob, entropy, logits, targets, N, V, temperature) {
    const r = ref.logprobFromLogits(logits, targets, N, V, temperature);
    logprob.set(r.lp);
    entropy.set(r.ent);
  },
  sample(ids, logits, seeds, B, V, temperature, topK, topP, minP, greedy) {
    for (let b = 0; b < B; b++) {
      const row = logits.subarray(b * V, b * V + V);
      if (greedy || temperature <= 0) {
        let best = 0;
        for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
        ids[b] = best;
        continue;
      }
      const z = Float64Array.from(row, (x) => x / temperature);
      const { lse } = ref.rowStats(z, 0, V);
      const p = z.map((x) => Math.exp(x - lse));
      const order = [...p.keys()].sort((x, y) => p[y] - p[x]);
      const keep = new Float64Array(V);
      let cum = 0;
      for (let r = 0; r < V; r++) {
        const j = order[r];
        if (topK > 0 && r >= topK) break;
        if (p[j] < minP * p[order[0]]) break;
        keep[j] = p[j];
        cum += p[j];
        if (cum >= topP) break;
      }
      let u = mulberry32(seeds[b])() * cum;
      let pick = order[0];
      for (const j of order) {
        if (keep[j] === 0) continue;
        pick = j;
        u -= keep[j];
        if (u < 0) break;
      }
      ids[b] = pick;
    }
  },
  linearLogprobForward(logprob, entropy, lse, hidden, weight, targets, N, H, V, temperature) {
    const r = ref.logprobFromLogits(ref.matmul(hidden, f32(weight), N, V, H, false, true), targets, N, V, temperature);
    logprob.set(r.lp);
    entropy.set(r.ent);
    lse.set(r.lse);
  },
  linearLogprobBackward(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, _lse, _entropy, N, H, V, temperature) {
    const w = f32(weight);
    const dz = ref.logprobBackward(ref.matmul(hidden, w, N, V, H, false, true), targets, dlogprob, dentropy, N, V, temperature);
    dhidden.set(ref.matmul(dz, w, N, H, V, false, false));
    if (dweight) dweight.set(ref.matmul(dz, hidden, V, H, N, true, false, 1, dweight));
  },
};

/**
 * A CpuBackend whose missing addon functions (or all, with ANVIL_NAIVE_OPS=1 or when the addon
 * is not built) are the naive ones above. Returns the backend and the names that were filled in.
 */
export function testBackend(): { backend: CpuBackend; naive: string[] } {
  let real: Partial<NativeAddon> = {};
  let backend: CpuBackend;
  try {
    backend = new CpuBackend({ threads: 1 });
    real = backend.native;
  } catch {
    backend = Object.create(CpuBackend.prototype) as CpuBackend;
    Object.defineProperty(backend, "name", { value: "cpu" });
  }
  const forceNaive = process.env.ANVIL_NAIVE_OPS === "1";
  const naive: string[] = [];
  const merged: Record<string, unknown> = { ...real };
  for (const [k, fn] of Object.entries(naiveOps)) {
    if (forceNaive || typeof (real as Record<string, unknown>)[k] !== "function") {
      merged[k] = fn;
      naive.push(k);
    }
  }
  Object.defineProperty(backend, "native", { value: merged });
  return { backend, naive };
}
