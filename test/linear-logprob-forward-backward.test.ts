// The one-pass linear log-prob forward + backward (linearLogprobForwardBackward) against the
// forward then the backward it replaces, on the CPU kernel: token blocks and vocabulary shares,
// rows without a target, rows with no upstream gradient (forward only), a frozen bf16 head
// without dweight, and the host-array API.
import { describe, expect, it } from "vitest";
import type { Tensor } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu.js";
import { linearLogprobComposed } from "../src/backend/linear-logprob-composed.js";
import * as kernels from "../src/kernels.js";
import { mulberry32 as rng } from "../src/util/rng.js";
import { normals, relErr } from "./helpers/reference-ops.js";

const cpu = new CpuBackend();

function makeCase(N: number, H: number, V: number, seed: number) {
  const r = rng(seed);
  const targets = Int32Array.from({ length: N }, () => (r() < 0.1 ? -1 : Math.floor(r() * V)));
  const passive = (i: number) => i % 5 === 2; // no upstream gradient: forward only
  const dlogprob = normals(N, seed + 3).map((v, i) => (passive(i) ? 0 : v));
  const dentropy = normals(N, seed + 4, 0.3).map((v, i) => (passive(i) || i % 7 === 0 ? 0 : v));
  return { N, H, V, hidden: normals(N * H, seed + 1, 1.5), weight: normals(V * H, seed + 2, 0.5), targets, dlogprob, dentropy, dwInit: normals(V * H, seed + 5, 0.01) };
}

async function run(x: ReturnType<typeof makeCase>, composed: boolean, o: { bf16?: boolean; noDweight?: boolean } = {}) {
  const { N, H, V } = x;
  const lp = cpu.upload(normals(N, 7), [N]), ent = cpu.upload(normals(N, 8), [N]); // overwritten
  const dh = cpu.upload(normals(N * H, 9), [N, H]); // overwritten
  const dw: Tensor | null = o.noDweight ? null : cpu.upload(x.dwInit, [V, H]); // accumulated into
  const args = [lp, ent, dh, dw, cpu.upload(x.hidden, [N, H]), cpu.upload(x.weight, [V, H], o.bf16 ? "bf16" : "f32"), cpu.upload(x.targets, [N]), cpu.upload(x.dlogprob, [N]), cpu.upload(x.dentropy, [N]), 0.8] as const;
  if (composed) linearLogprobComposed(cpu, ...args);
  else cpu.linearLogprobForwardBackward(...args);
  const rd = async (t: Tensor | null) => (t ? ((await cpu.read(t)) as Float32Array) : new Float32Array(0));
  return { lp: await rd(lp), ent: await rd(ent), dh: await rd(dh), dw: await rd(dw) };
}

describe("linearLogprobForwardBackward (cpu)", () => {
  it("equals the forward then the backward, across token blocks and vocabulary shares", async () => {
    const x = makeCase(600, 24, 5000, 11); // 3 token blocks of at most 256 rows
    const [got, want] = [await run(x, false), await run(x, true)];
    for (const k of ["lp", "ent", "dh", "dw"] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(1e-5);
    // rows without a target: no log-prob, entropy or gradient; forward-only rows: log-prob, no gradient
    for (let i = 0; i < x.N; i++) {
      const row = got.dh.subarray(i * x.H, (i + 1) * x.H);
      if (x.targets[i] < 0) expect([got.lp[i], got.ent[i], ...row].every((v) => v === 0), `row ${i}`).toBe(true);
      else if (x.dlogprob[i] === 0 && x.dentropy[i] === 0) expect(got.lp[i] < 0 && row.every((v) => v === 0), `row ${i}`).toBe(true);
    }
  });

  it("takes a frozen bf16 head without dweight, as the composition does", async () => {
    const x = makeCase(70, 16, 700, 23);
    const [got, want] = [await run(x, false, { bf16: true, noDweight: true }), await run(x, true, { bf16: true, noDweight: true })];
    for (const k of ["lp", "ent", "dh"] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(1e-5);
  });

  it("an 8-row block at V = 152,064: the small-M sgemm sums K = 76k vocabulary columns per thread to float rounding", async () => {
    // one float running sum over K (before the K blocking in sgemm_avx2.cpp small_m) was 4e-5 off
    const x = makeCase(8, 4, 152064, 17);
    x.targets.fill(5);
    const [got, want] = [await run(x, false), await run(x, true)];
    expect(relErr(got.dh, want.dh)).toBeLessThan(5e-6);
  });

  it("is deterministic", async () => {
    const x = makeCase(300, 16, 3000, 5);
    expect(await run(x, false)).toEqual(await run(x, false));
  });

  it("host API: linearLogprobWithGrad equals linearLogprob + linearLogprobBackward", () => {
    const x = makeCase(90, 12, 400, 31);
    const dims = { N: x.N, H: x.H, V: x.V, temperature: 0.7 };
    const got = kernels.linearLogprobWithGrad(x.dlogprob, x.dentropy, x.hidden, x.weight, x.targets, dims);
    const fwd = kernels.linearLogprob(x.hidden, x.weight, x.targets, dims);
    const bwd = kernels.linearLogprobBackward(x.dlogprob, x.dentropy, x.hidden, x.weight, x.targets, fwd, dims);
    expect(relErr(got.logprob, fwd.logprob)).toBeLessThan(1e-5);
    expect(relErr(got.entropy, fwd.entropy)).toBeLessThan(1e-5);
    expect(relErr(got.dhidden, bwd.dhidden)).toBeLessThan(1e-5);
    expect(relErr(got.dweight, bwd.dweight)).toBeLessThan(1e-5);
  });
});
