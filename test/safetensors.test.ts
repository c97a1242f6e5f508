import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, truncate, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  loadWeights,
  readSafetensors,
  readSafetensorsHeader,
  saveSafetensors,
  type TensorToSave,
} from "../src/model/safetensors.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "anvil-st-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Independent half decode (float64 arithmetic) used as the reference. */
function halfRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function f32(values: number[]): Float32Array {
  return Float32Array.from(values);
}

function toF16(values: number[]): number[] {
  const out = new Uint16Array(values.length);
  f32ToF16(f32(values), out);
  return Array.from(out);
}

function toBf16(values: number[]): number[] {
  const out = new Uint16Array(values.length);
  f32ToBf16(f32(values), out);
  return Array.from(out);
}

function seq(n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 1.7 + offset) * scale;
  return a;
}

/** A raw safetensors file from a header object and data bytes (for malformed-file tests). */
async function rawFile(name: string, header: unknown, data: Uint8Array, lengthOverride?: bigint): Promise<string> {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const buf = new Uint8Array(8 + h.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  buf.set(h, 8);
  buf.set(data, 8 + h.length);
  const path = join(dir, name);
  await writeFile(path, buf);
  return path;
}

describe("dtype conversion", () => {
  it("f16 -> f32 is exact for all 65536 halves", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = new Float32Array(65536);
    f16ToF32(all, out);
    for (let h = 0; h < 65536; h++) {
      const ref = halfRef(h);
      if (Number.isNaN(ref)) expect(Number.isNaN(out[h]!)).toBe(true);
      else expect(Object.is(out[h], ref)).toBe(true);
    }
  });

  it("f32 -> f16 inverts f16 -> f32 on every non-NaN half", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const asF32 = new Float32Array(65536);
    f16ToF32(all, asF32);
    const back = new Uint16Array(65536);
    f32ToF16(asF32, back);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(halfRef(h))) expect(Number.isNaN(halfRef(back[h]!))).toBe(true);
      else expect(back[h]).toBe(h);
    }
  });

  it("f32 -> f16 rounds to nearest even, with subnormals, overflow and signed zero", () => {
    expect(toF16([1 + 2 ** -11])).toEqual([0x3c00]); // tie between 1 and 1+2^-10 -> even (1)
    expect(toF16([1 + 3 * 2 ** -11])).toEqual([0x3c02]); // tie -> even (up)
    expect(toF16([1 + 2 ** -11 + 2 ** -20])).toEqual([0x3c01]); // just above the tie
    expect(toF16([2 ** -24])).toEqual([0x0001]); // smallest subnormal
    expect(toF16([2 ** -25])).toEqual([0x0000]); // tie with 0 -> even (0)
    expect(toF16([3 * 2 ** -25])).toEqual([0x0002]); // tie 1.5 ulp -> 2
    expect(toF16([2 ** -25 + 2 ** -40])).toEqual([0x0001]);
    expect(toF16([2 ** -14 - 2 ** -25])).toEqual([0x0400]); // rounds up into the normals
    expect(toF16([65504, 65519.99, 65520, 1e6, Infinity, -Infinity])).toEqual([0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x7c00, 0xfc00]);
    expect(toF16([-0, 0, -1.5])).toEqual([0x8000, 0x0000, 0xbe00]);
    const nan = toF16([NaN])[0]!;
    expect(Number.isNaN(halfRef(nan))).toBe(true);
    // Random values: within half an ulp of the exact value.
    for (let i = 0; i < 2000; i++) {
      const x = Math.fround((Math.sin(i * 12.9898) * 43758.5453) % 1000);
      const h = toF16([x])[0]!;
      const got = halfRef(h);
      const ulp = Math.abs(halfRef(h + 1) - got) || 2 ** -24;
      expect(Math.abs(got - x)).toBeLessThanOrEqual(ulp / 2 + 1e-12);
    }
  });

  it("bf16 <-> f32: exact widening, round to nearest even, NaN and inf kept", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = new Float32Array(65536);
    bf16ToF32(all, wide);
    const back = new Uint16Array(65536);
    f32ToBf16(wide, back);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(wide[h]!)) expect(Number.isNaN(new Float32Array(new Uint32Array([back[h]! << 16]).buffer)[0]!)).toBe(true);
      else expect(back[h]).toBe(h);
    }
    expect(wide[0x3f80]).toBe(1);
    expect(wide[0x0001]).toBe(2 ** -133); // bf16 subnormal
    expect(toBf16([1 + 2 ** -8])).toEqual([0x3f80]); // tie -> even
    expect(toBf16([1 + 3 * 2 ** -8])).toEqual([0x3f82]); // tie -> even (up)
    expect(toBf16([1 + 2 ** -8 + 2 ** -20])).toEqual([0x3f81]);
    expect(toBf16([3.4028234663852886e38, -Infinity, -0])).toEqual([0x7f80, 0xff80, 0x8000]);
    expect(toBf16([3 * 2 ** -134, 2 ** -134])).toEqual([0x0002, 0x0000]); // subnormal ties -> even
    const n = toBf16([NaN])[0]!;
    expect(n & 0x7f80).toBe(0x7f80);
    expect(n & 0x7f).not.toBe(0);
  });
});

describe("save and read", () => {
  const tensors = new Map<string, TensorToSave>([
    ["model.norm.weight", { data: seq(7, 1, 0.3), shape: [7] }],
    ["a.big", { data: seq(3 * 5 * 11, 3), shape: [3, 5, 11] }],
    ["scalar", { data: f32([2.5]), shape: [] }],
    ["empty", { data: new Float32Array(0), shape: [0, 4] }],
  ]);

  it("writes a spec-conformant header: padded to 8, sorted, metadata with format pt", async () => {
    const path = join(dir, "hdr.safetensors");
    await saveSafetensors(path, tensors, { metadata: { note: "hi" } });
    const bytes = await readFile(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
    expect(header.__metadata__).toEqual({ format: "pt", note: "hi" });
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    expect(names).toEqual(["a.big", "empty", "model.norm.weight", "scalar"]);
    expect(header["a.big"]).toEqual({ dtype: "F32", shape: [3, 5, 11], data_offsets: [0, 660] });
    expect(bytes.length).toBe(8 + n + (165 + 0 + 7 + 1) * 4);
    const h = await readSafetensorsHeader(path);
    expect(h.metadata).toEqual({ format: "pt", note: "hi" });
    expect(h.tensors.get("scalar")!.shape).toEqual([]);
  });

  for (const dtype of ["F32", "BF16", "F16"] as const) {
    it(`round-trips ${dtype}`, async () => {
      const path = join(dir, `rt-${dtype}.safetensors`);
      await saveSafetensors(path, tensors, { dtype });
      const back = await readSafetensors(path);
      expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        const got = back.get(name)!;
        expect(got.dtype).toBe(dtype);
        expect(got.shape).toEqual(t.shape);
        let expected = t.data;
        if (dtype !== "F32") {
          const half = new Uint16Array(t.data.length);
          expected = new Float32Array(t.data.length);
          if (dtype === "BF16") {
            f32ToBf16(t.data, half);
            bf16ToF32(half, expected);
          } else {
            f32ToF16(t.data, half);
            f16ToF32(half, expected);
          }
          const tol = dtype === "BF16" ? 2 ** -8 : 2 ** -11;
          for (let i = 0; i < t.data.length; i++) {
            expect(Math.abs(got.data[i]! - t.data[i]!)).toBeLessThanOrEqual(Math.abs(t.data[i]!) * tol + 1e-7);
          }
        }
        expect(Array.from(got.data)).toEqual(Array.from(expected));
      }
    });
  }

  it("writes large tensors in chunks (more than one conversion chunk)", async () => {
    const big = seq((1 << 20) + 37, 2);
    const path = join(dir, "chunked.safetensors");
    await saveSafetensors(path, new Map([["w", { data: big, shape: [big.length] }]]), { dtype: "BF16" });
    const got = (await readSafetensors(path)).get("w")!.data;
    const ref = new Uint16Array(big.length);
    f32ToBf16(big, ref);
    const wide = new Float32Array(big.length);
    bf16ToF32(ref, wide);
    expect(got.length).toBe(big.length);
    expect(got[big.length - 1]).toBe(wide[big.length - 1]);
    expect(got[1 << 20]).toBe(wide[1 << 20]);
  });

  it("rejects bad input to the writer and leaves no file behind", async () => {
    const path = join(dir, "bad-write.safetensors");
    await expect(saveSafetensors(path, new Map([["w", { data: seq(5), shape: [2, 3] }]]))).rejects.toThrow(/"w" has 5 elements but shape \[2,3\]/);
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });
});

describe("loadWeights", () => {
  const shapes = new Map<string, number[]>([
    ["model.embed_tokens.weight", [6, 4]],
    ["model.norm.weight", [4]],
    ["model.layers.0.mlp.up_proj.weight", [5, 4]],
  ]);
  const make = () => new Map([...shapes].map(([n, s], i) => [n, { data: seq(s.reduce((a, b) => a * b, 1), 1, i), shape: s }]));

  it("loads a single file and reports a tied lm_head as a note", async () => {
    const d = join(dir, "single");
    await mkdir(d);
    const t = make();
    t.set("lm_head.weight", { data: seq(24), shape: [6, 4] });
    await saveSafetensors(join(d, "model.safetensors"), t, { dtype: "BF16" });
    const notes: string[] = [];
    const w = await loadWeights(d, shapes, { onNote: (m) => notes.push(m) });
    expect([...w.keys()]).toEqual([...shapes.keys()]);
    expect(w.get("model.norm.weight")!.length).toBe(4);
    expect(notes.join("\n")).toMatch(/ignored lm_head\.weight.*ties/);
  });

  it("loads a sharded checkpoint through model.safetensors.index.json", async () => {
    const d = join(dir, "sharded");
    await mkdir(d);
    const t = make();
    const names = [...t.keys()];
    const shard1 = new Map(names.slice(0, 2).map((n) => [n, t.get(n)!]));
    const shard2 = new Map(names.slice(2).map((n) => [n, t.get(n)!]));
    await saveSafetensors(join(d, "model-00001-of-00002.safetensors"), shard1, { dtype: "F16" });
    await saveSafetensors(join(d, "model-00002-of-00002.safetensors"), shard2, { dtype: "F32" });
    const weightMap: Record<string, string> = {};
    for (const n of shard1.keys()) weightMap[n] = "model-00001-of-00002.safetensors";
    for (const n of shard2.keys()) weightMap[n] = "model-00002-of-00002.safetensors";
    await writeFile(join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const w = await loadWeights(d, shapes);
    expect(Array.from(w.get("model.layers.0.mlp.up_proj.weight")!)).toEqual(Array.from(t.get("model.layers.0.mlp.up_proj.weight")!.data));
    const norm = w.get("model.norm.weight")!;
    for (let i = 0; i < 4; i++) expect(norm[i]).toBeCloseTo(t.get("model.norm.weight")!.data[i]!, 3);

    // Index naming a tensor its shard does not hold.
    await writeFile(
      join(d, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { ...weightMap, "model.norm.weight": "model-00002-of-00002.safetensors" } }),
    );
    await expect(loadWeights(d, shapes)).rejects.toThrow(/"model\.norm\.weight" is listed in model\.safetensors\.index\.json for model-00002-of-00002\.safetensors/);
    // Index escaping the model directory.
    await writeFile(join(d, "model.safetensors.index.json"), JSON.stringify({ weight_map: { x: "../evil.safetensors" } }));
    await expect(loadWeights(d, shapes)).rejects.toThrow(/points outside/);
    await writeFile(join(d, "model.safetensors.index.json"), "{not json");
    await expect(loadWeights(d, shapes)).rejects.toThrow(/model\.safetensors\.index\.json: malformed JSON/);
  });

  it("names missing, unexpected and mis-shaped tensors", async () => {
    const d = join(dir, "mismatch");
    await mkdir(d);
    const path = join(d, "model.safetensors");
    const t = make();
    t.delete("model.norm.weight");
    await saveSafetensors(path, t);
    await expect(loadWeights(d, shapes)).rejects.toThrow(/missing tensor "model\.norm\.weight" in .*mismatch\/model\.safetensors/);

    const t2 = make();
    t2.set("model.layers.0.mlp.gate_proj.bias", { data: seq(5), shape: [5] });
    await saveSafetensors(path, t2);
    await expect(loadWeights(d, shapes)).rejects.toThrow(/unexpected tensor "model\.layers\.0\.mlp\.gate_proj\.bias"/);

    const t3 = make();
    t3.set("model.layers.0.mlp.up_proj.weight", { data: seq(20), shape: [4, 5] });
    await saveSafetensors(path, t3);
    await expect(loadWeights(d, shapes)).rejects.toThrow(
      /tensor "model\.layers\.0\.mlp\.up_proj\.weight" in .*model\.safetensors has shape \[4,5\], expected \[5,4\]/,
    );

    const t4 = make();
    t4.get("model.norm.weight")!.data[2] = NaN;
    await saveSafetensors(path, t4);
    await expect(loadWeights(d, shapes)).rejects.toThrow(/tensor "model\.norm\.weight" .*element 2 is NaN/);

    await rm(path);
    await expect(loadWeights(d, shapes)).rejects.toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json/);
  });

  it("rejects a truncated file, naming the tensor and file", async () => {
    const d = join(dir, "truncated");
    await mkdir(d);
    const path = join(d, "model.safetensors");
    await saveSafetensors(path, make());
    const size = (await readFile(path)).length;
    await truncate(path, size - 10);
    await expect(loadWeights(d, shapes)).rejects.toThrow(
      /tensor "model\.norm\.weight" in .*truncated\/model\.safetensors: data_offsets \[\d+, \d+\] extend past the data region .*truncated/,
    );
    await truncate(path, 5);
    await expect(loadWeights(d, shapes)).rejects.toThrow(/5 bytes is too short/);
  });

  it("rejects an unsupported dtype for a needed tensor, naming it", async () => {
    const d = join(dir, "dtype");
    await mkdir(d);
    await rawFile("dtype/model.safetensors", {
      "model.embed_tokens.weight": { dtype: "F32", shape: [6, 4], data_offsets: [0, 96] },
      "model.norm.weight": { dtype: "I64", shape: [4], data_offsets: [96, 128] },
      "model.layers.0.mlp.up_proj.weight": { dtype: "F32", shape: [5, 4], data_offsets: [128, 208] },
    }, new Uint8Array(208));
    await expect(loadWeights(d, shapes)).rejects.toThrow(/tensor "model\.norm\.weight" in .*dtype\/model\.safetensors: dtype I64 is not supported/);
  });
});

describe("malformed files", () => {
  const data = new Uint8Array(32);

  it("header length larger than the file", async () => {
    const p = await rawFile("long.safetensors", { w: { dtype: "F32", shape: [8], data_offsets: [0, 32] } }, data, 1000n);
    await expect(readSafetensors(p)).rejects.toThrow(/long\.safetensors: header length 1000 exceeds the file size/);
    const q = await rawFile("huge.safetensors", {}, data, 1n << 60n);
    await expect(readSafetensors(q)).rejects.toThrow(/header length \d+ exceeds the 100000000-byte limit/);
  });

  it("offsets outside the data region", async () => {
    const p = await rawFile("outside.safetensors", { w: { dtype: "F32", shape: [10], data_offsets: [0, 40] } }, data);
    await expect(readSafetensors(p)).rejects.toThrow(/tensor "w" in .*outside\.safetensors: data_offsets \[0, 40\] extend past/);
  });

  it("overlapping tensors", async () => {
    const p = await rawFile("overlap.safetensors", {
      a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
      b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
      c: { dtype: "F32", shape: [2], data_offsets: [24, 32] },
    }, data);
    await expect(readSafetensors(p)).rejects.toThrow(/tensor "b" \[8, 24\] overlaps tensor "a" \[0, 16\]/);
  });

  it("gaps and trailing bytes", async () => {
    const gap = await rawFile("gap.safetensors", {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [4], data_offsets: [16, 32] },
    }, data);
    await expect(readSafetensors(gap)).rejects.toThrow(/8 unaccounted bytes before tensor "b"/);
    const trail = await rawFile("trail.safetensors", { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, data);
    await expect(readSafetensors(trail)).rejects.toThrow(/16 trailing bytes/);
  });

  it("byte length disagreeing with shape and dtype", async () => {
    const p = await rawFile("len.safetensors", { w: { dtype: "BF16", shape: [8], data_offsets: [0, 32] } }, data);
    await expect(readSafetensors(p)).rejects.toThrow(/tensor "w" .*span 32 bytes, but BF16 shape \[8\] needs 16/);
  });

  it("unknown dtype, bad shape, bad offsets, bad JSON, bad metadata", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ w: { dtype: "F99", shape: [8], data_offsets: [0, 32] } }, /tensor "w" .*unknown dtype "F99"/],
      [{ w: { dtype: "F32", shape: [8, -1], data_offsets: [0, 32] } }, /tensor "w" .*shape must be/],
      [{ w: { dtype: "F32", shape: [8], data_offsets: [32, 0] } }, /tensor "w" .*data_offsets must be/],
      [{ w: { dtype: "F32", shape: [8], data_offsets: [0, 32] }, __metadata__: { a: 1 } }, /"__metadata__" must be an object of string values/],
      [[1, 2], /header is not a JSON object/],
    ];
    for (const [i, [header, message]] of cases.entries()) {
      const p = await rawFile(`bad${i}.safetensors`, header, data);
      await expect(readSafetensors(p)).rejects.toThrow(message);
    }
    const p = join(dir, "garbage.safetensors");
    const bytes = new Uint8Array(40);
    new DataView(bytes.buffer).setBigUint64(0, 8n, true);
    bytes.set(new TextEncoder().encode("{\"a\":1,x"), 8);
    await writeFile(p, bytes);
    await expect(readSafetensors(p)).rejects.toThrow(/garbage\.safetensors: header is not valid UTF-8 JSON/);
  });

  it("accepts __metadata__ and reads F16 written by hand", async () => {
    const half = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]);
    const p = await rawFile("hand.safetensors", {
      __metadata__: { format: "pt" },
      h: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] },
    }, new Uint8Array(half.buffer));
    const t = (await readSafetensors(p)).get("h")!;
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(t.data)).toEqual([1, -2, 2 ** -24, 65504]);
  });
});
