// The sgemm candidates (native/cpu/sgemm_*.cpp) against a float64 reference, each one by name,
// and the selection by measurement (src/backend/gemm.ts): cache, ANVIL_GEMM, errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { measureGemm, selectGemm, type GemmShape } from "../src/backend/gemm.js";
import { loadAddon } from "../src/backend/native.js";
import { matmul as matmulRef, nerr, rand } from "./helpers/reference-ops.js";

const native = loadAddon();
const candidates = native.gemmCandidates();
const selectedBefore = native.gemmSelected();
afterAll(() => native.setGemm(selectedBefore));

describe("sgemm candidates", () => {
  it("always include the built-in AVX2 kernel, and AVX-512 exactly when the CPU has it", () => {
    expect(candidates).toContain("avx2");
    expect(native.buildInfo().gemmCandidates).toEqual(candidates);
    let flags = "";
    try {
      flags = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return; // not Linux: nothing to compare with
    }
    if (process.arch === "x64") expect(candidates.includes("avx512")).toBe(/\bavx512f\b/.test(flags));
  });

  // Edges of both micro-tiles (6x16 and 12x32) and of every block (KC 256, MC 144, NC 3072),
  // the team's split by columns (150 x 3100) and by rows (400 x 100), the few-row path (M <= 8),
  // and one product with K = 1.
  const shapes: [number, number, number][] = [
    [9, 17, 5],
    [13, 33, 31],
    [25, 47, 257],
    [150, 3100, 260],
    [400, 100, 70],
    [3, 70, 40],
    [40, 32, 1],
  ];
  for (const name of candidates)
    describe(name, () => {
      for (const [M, N, K] of shapes)
        for (const ta of [false, true])
          for (const tb of [false, true]) {
            if (M === 150 && ta !== tb) continue; // the big shape: two layouts keep the reference quick
            it(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}: overwrite and accumulate match float64`, () => {
              const a = rand(M * K, M + 3 * K), b = rand(K * N, N + 7 * K);
              const ref = matmulRef(a, b, M, N, K, ta, tb);
              const out = new Float32Array(M * N).fill(NaN); // never read when not accumulating
              native.matmulWith(name, out, a, b, M, N, K, ta, tb, false, 1);
              expect(nerr(out, ref)).toBeLessThan(1e-5);
              const c0 = rand(M * N, 99);
              const acc = c0.slice();
              native.matmulWith(name, acc, a, b, M, N, K, ta, tb, true, -0.5);
              expect(nerr(acc, matmulRef(a, b, M, N, K, ta, tb, -0.5, c0))).toBeLessThan(1e-5);
            });
          }
      it("is what matmul runs once selected", () => {
        native.setGemm(name);
        expect(native.gemmSelected()).toBe(name);
        const [M, N, K] = [37, 41, 43];
        const a = rand(M * K, 1), b = rand(N * K, 2);
        const viaMatmul = new Float32Array(M * N), viaName = new Float32Array(M * N);
        native.matmul(viaMatmul, a, b, M, N, K, false, true, false, 1);
        native.matmulWith(name, viaName, a, b, M, N, K, false, true, false, 1);
        expect(viaMatmul).toEqual(viaName);
      });
    });

  it("unknown names are RangeErrors that list the candidates", () => {
    const o = new Float32Array(4);
    expect(() => native.matmulWith("mkl", o, o.slice(), o.slice(), 2, 2, 2, false, false, false, 1)).toThrow(RangeError);
    expect(() => native.setGemm("mkl")).toThrow(/unknown sgemm candidate 'mkl'/);
    expect(native.gemmSelected()).not.toBe("mkl");
  });
});

describe("selectGemm", () => {
  const dir = mkdtempSync(join(tmpdir(), "anvil-gemm-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // Small shapes: the selection logic, not the figures, is under test here.
  const shapes: GemmShape[] = [{ M: 64, N: 96, K: 80, transA: false, transB: true }];

  it("measures every candidate, selects the fastest, and caches it for the next process", () => {
    const first = selectGemm(native, { shapes, cacheDir: dir, force: "auto" });
    expect(first.source).toBe("measured");
    expect(Object.keys(first.gflops).sort()).toEqual([...candidates].sort());
    for (const g of Object.values(first.gflops)) expect(g).toBeGreaterThan(0);
    expect(first.gflops[first.selected]).toBe(Math.max(...Object.values(first.gflops)));
    expect(native.gemmSelected()).toBe(first.selected);

    const second = selectGemm(native, { shapes, cacheDir: dir, force: "auto" });
    expect(second).toEqual({ ...first, source: "cache" });
    const onDisk = JSON.parse(readFileSync(join(dir, "gemm.json"), "utf8")) as Record<string, { selected: string }>;
    expect(Object.values(onDisk).map((e) => e.selected)).toEqual([first.selected]);

    // Other shapes are another key: measured, and both entries kept.
    const other = selectGemm(native, { shapes: [{ ...shapes[0], transB: false }], cacheDir: dir, force: "" });
    expect(other.source).toBe("measured");
    expect(Object.keys(JSON.parse(readFileSync(join(dir, "gemm.json"), "utf8")))).toHaveLength(2);
  });

  it("ANVIL_GEMM forces a candidate without measuring, and a bad value says what is allowed", () => {
    for (const name of candidates) {
      expect(selectGemm(native, { shapes, cacheDir: dir, force: name })).toEqual({ selected: name, gflops: {}, source: "env" });
      expect(native.gemmSelected()).toBe(name);
    }
    expect(() => selectGemm(native, { shapes, cacheDir: dir, force: "fast" })).toThrow(new RegExp(`ANVIL_GEMM=fast .*auto, ${candidates.join(", ")}`));
  });

  it("a corrupt cache file is measured over", () => {
    const bad = mkdtempSync(join(tmpdir(), "anvil-gemm-bad-"));
    try {
      const file = join(bad, "gemm.json");
      writeFileSync(file, "{ not json");
      expect(selectGemm(native, { shapes, cacheDir: bad, force: "auto" }).source).toBe("measured");
      expect(() => JSON.parse(readFileSync(file, "utf8"))).not.toThrow();
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  it("measureGemm reports GFLOP/s per candidate", () => {
    const g = measureGemm(native, shapes, 1);
    expect(Object.keys(g)).toEqual(candidates);
  });
});
