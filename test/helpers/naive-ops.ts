// Naive TypeScript versions of the addon functions the decoder uses (float64 accumulation),
// same names and argument orders as NativeAddon. test/model.test.ts fills in any function the
// built addon lacks with these, so the model graph is testable before every C++ op lands, and
// `ANVIL_NAIVE_OPS=1` forces them all (a reference run independent of native/).
import { CpuBackend } from "../../src/backend/cpu.js";
import type { NativeAddon } from "../../src/backend/native.js";
import { mulberry32 } from "../../src/util/rng.js";

type F32 = Float32Array;
type I32 = Int32Array;

function ropeApply(out: F32, inp: F32, pos: I32, N: number, nh: number, hd: number, theta: number, sign: number): void {
  const half = hd / 2;
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < half; i++) {
      const ang = pos[n] * Math.pow(theta, (-2 * i) / hd);
      const c = Math.cos(ang);
      const s = sign * Math.sin(ang);
      for (let h = 0; h < nh; h++) {
        const o = (n * nh + h) * hd;
        const x1 = inp[o + i];
        const x2 = inp[o + i + half];
        out[o + i] = x1 * c - x2 * s;
        out[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** Softmax statistics of one row of logits / temperature. */
function rowStats(z: Float64Array): { lse: number; p: Float64Array } {
  let mx = -Infinity;
  for (const v of z) mx = Math.max(mx, v);
  let s = 0;
  for (const v of z) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  const p = new Float64Array(z.length);
  for (let j = 0; j < z.length; j++) p[j] = Math.exp(z[j] - lse);
  return { lse, p };
}


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
    for (let n = 0; n < N; n++) out.set(table.subarray(ids[n] * C, ids[n] * C + C), n * C);
  },
  embeddingBackward(dtable, dout, ids, N, C) {
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) dtable[ids[n] * C + c] += dout[n * C + c];
  },
  matmul(out, a, b, M, N, K, transA, transB, accumulate, alpha) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += (transA ? a[k * M + m] : a[m * K + k]) * (transB ? b[n * K + k] : b[k * N + n]);
        out[m * N + n] = (accumulate ? out[m * N + n] : 0) + alpha * s;
      }
    }
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
    for (let n = 0; n < N; n++) {
      let ss = 0;
      for (let c = 0; c < C; c++) ss += inp[n * C + c] ** 2;
      const r = 1 / Math.sqrt(ss / C + eps);
      rstd[n] = r;
      for (let c = 0; c < C; c++) out[n * C + c] = inp[n * C + c] * r * weight[c];
    }
  },
  rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C) {
    for (let n = 0; n < N; n++) {
      const r = rstd[n];
      let dot = 0;
      for (let c = 0; c < C; c++) dot += dout[n * C + c] * weight[c] * inp[n * C + c];
      for (let c = 0; c < C; c++) {
        const x = inp[n * C + c];
        dweight[c] += dout[n * C + c] * x * r;
        dinp[n * C + c] = r * dout[n * C + c] * weight[c] - ((r * r * r) / C) * x * dot;
      }
    }
  },
  ropeForward(out, inp, pos, N, nh, hd, theta) {
    ropeApply(out, inp, pos, N, nh, hd, theta, 1);
  },
  ropeBackward(dinp, dout, pos, N, nh, hd, theta) {
    ropeApply(dinp, dout, pos, N, nh, hd, theta, -1);
  },
  attentionForward(out, lse, q, k, v, B, T, nh, nkv, hd) {
    const rep = nh / nkv;
    const sc = 1 / Math.sqrt(hd);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < nh; h++)
        for (let t = 0; t < T; t++) {
          const z = new Float64Array(t + 1);
          const qo = ((b * T + t) * nh + h) * hd;
          for (let s = 0; s <= t; s++) {
            const ko = ((b * T + s) * nkv + Math.floor(h / rep)) * hd;
            let d = 0;
            for (let i = 0; i < hd; i++) d += q[qo + i] * k[ko + i];
            z[s] = d * sc;
          }
          const { lse: l, p } = rowStats(z);
          lse[(b * nh + h) * T + t] = l;
          for (let i = 0; i < hd; i++) {
            let acc = 0;
            for (let s = 0; s <= t; s++) acc += p[s] * v[((b * T + s) * nkv + Math.floor(h / rep)) * hd + i];
            out[qo + i] = acc;
          }
        }
  },
  attentionBackward(dq, dk, dv, dout, q, k, v, _out, _lse, B, T, nh, nkv, hd) {
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    const rep = nh / nkv;
    const sc = 1 / Math.sqrt(hd);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < nh; h++)
        for (let t = 0; t < T; t++) {
          const qo = ((b * T + t) * nh + h) * hd;
          const kvo = (s: number) => ((b * T + s) * nkv + Math.floor(h / rep)) * hd;
          const z = new Float64Array(t + 1);
          for (let s = 0; s <= t; s++) {
            let d = 0;
            for (let i = 0; i < hd; i++) d += q[qo + i] * k[kvo(s) + i];
            z[s] = d * sc;
          }
          const { p } = rowStats(z);
          const dp = new Float64Array(t + 1);
          let pdp = 0;
          for (let s = 0; s <= t; s++) {
            let d = 0;
            for (let i = 0; i < hd; i++) {
              d += dout[qo + i] * v[kvo(s) + i];
              dv[kvo(s) + i] += p[s] * dout[qo + i];
            }
            dp[s] = d;
            pdp += p[s] * d;
          }
          for (let s = 0; s <= t; s++) {
            const dz = p[s] * (dp[s] - pdp) * sc;
            for (let i = 0; i < hd; i++) {
              dq[qo + i] += dz * k[kvo(s) + i];
              dk[kvo(s) + i] += dz * q[qo + i];
            }
          }
        }
  },
  attentionDecode(out, q, kCache, vCache, pos, B, Tq, S, nh, nkv, hd) {
    const rep = nh / nkv;
    const sc = 1 / Math.sqrt(hd);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Tq; t++)
        for (let h = 0; h < nh; h++) {
          const last = pos[b] + t;
          const qo = ((b * Tq + t) * nh + h) * hd;
          const kvo = (s: number) => ((b * S + s) * nkv + Math.floor(h / rep)) * hd;
          const z = new Float64Array(last + 1);
          for (let s = 0; s <= last; s++) {
            let d = 0;
            for (let i = 0; i < hd; i++) d += q[qo + i] * kCache[kvo(s) + i];
            z[s] = d * sc;
          }
          const { p } = rowStats(z);
          for (let i = 0; i < hd; i++) {
            let acc = 0;
            for (let s = 0; s <= last; s++) acc += p[s] * vCache[kvo(s) + i];
            out[qo + i] = acc;
          }
        }
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
    for (let n = 0; n < N; n++) {
      if (targets[n] < 0) {
        loss[n] = 0;
        continue;
      }
      const { lse } = rowStats(Float64Array.from(logits.subarray(n * V, n * V + V)));
      loss[n] = lse - logits[n * V + targets[n]];
    }
  },
  crossEntropyBackward(dlogits, dloss, logits, targets, N, V) {
    for (let n = 0; n < N; n++) {
      const { p } = rowStats(Float64Array.from(logits.subarray(n * V, n * V + V)));
      for (let j = 0; j < V; j++) dlogits[n * V + j] = targets[n] < 0 ? 0 : (p[j] - (j === targets[n] ? 1 : 0)) * dloss[n];
    }
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
    for (let n = 0; n < N; n++) {
      if (targets[n] < 0) {
        logprob[n] = 0;
        entropy[n] = 0;
        continue;
      }
      const z = Float64Array.from(logits.subarray(n * V, n * V + V), (x) => x / temperature);
      const { lse, p } = rowStats(z);
      logprob[n] = z[targets[n]] - lse;
      let h = 0;
      for (let j = 0; j < V; j++) h -= p[j] > 0 ? p[j] * (z[j] - lse) : 0;
      entropy[n] = h;
    }
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
      const { p } = rowStats(Float64Array.from(row, (x) => x / temperature));
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
    const logits = new Float32Array(N * V);
    naiveOps.matmul!(logits, hidden, weight, N, V, H, false, true, false, 1);
    for (let n = 0; n < N; n++) {
      const z = Float64Array.from(logits.subarray(n * V, n * V + V), (x) => x / temperature);
      const st = rowStats(z);
      lse[n] = st.lse;
      if (targets[n] < 0) {
        logprob[n] = 0;
        entropy[n] = 0;
        continue;
      }
      logprob[n] = z[targets[n]] - st.lse;
      let h = 0;
      for (let j = 0; j < V; j++) h -= st.p[j] * (z[j] - st.lse);
      entropy[n] = h;
    }
  },
  linearLogprobBackward(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, _lse, _entropy, N, H, V, temperature) {
    const logits = new Float32Array(N * V);
    naiveOps.matmul!(logits, hidden, weight, N, V, H, false, true, false, 1);
    const dz = new Float32Array(N * V);
    for (let n = 0; n < N; n++) {
      if (targets[n] < 0) continue;
      const z = Float64Array.from(logits.subarray(n * V, n * V + V), (x) => x / temperature);
      const { lse, p } = rowStats(z);
      let ent = 0;
      for (let j = 0; j < V; j++) ent -= p[j] * (z[j] - lse);
      for (let j = 0; j < V; j++) {
        const dlp = dlogprob[n] * ((j === targets[n] ? 1 : 0) - p[j]);
        const dent = -dentropy[n] * p[j] * (z[j] - lse + ent);
        dz[n * V + j] = (dlp + dent) / temperature;
      }
    }
    naiveOps.matmul!(dhidden, dz, weight, N, H, V, false, false, false, 1);
    naiveOps.matmul!(dweight, dz, hidden, V, H, N, true, false, true, 1);
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
