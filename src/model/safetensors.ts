// safetensors reader and writer (https://github.com/huggingface/safetensors, format section).
//
// File layout: u64 little-endian N | N bytes of UTF-8 JSON header | data region.
// The header maps tensor name -> {dtype, shape, data_offsets: [begin, end]} with offsets relative
// to the data region, plus an optional "__metadata__" string map. Like the reference
// implementation we require the tensors to tile the data region exactly (no overlap, no gap, no
// trailing bytes): anything else is a corrupt or truncated file, and is reported by tensor and
// file rather than read as garbage.
//
// Anvil computes in f32; F16 and BF16 are converted on load and on save (round to nearest even).
// Tensors are read one at a time straight into their destination arrays, so peak memory is the
// loaded weights plus one tensor, whatever the file size.

import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { readFile } from "node:fs/promises";
import { basename, join, resolve, sep } from "node:path";
import { endianness } from "node:os";
import { bf16ToF32, f32ToBf16 } from "../backend/bf16.js";
import { withAtomicFile } from "../util/atomic.js";
import { LM_HEAD_PARAM } from "./types.js";
import { exists } from "../util/exists.js";

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Dtypes Anvil can load and save. */
export type SafetensorsDtype = "F32" | "F16" | "BF16";

/** Element sizes of every dtype the format defines, so any valid header can be validated. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8, C64: 8,
};

/** safetensors' own cap on the header size (MAX_HEADER_SIZE in the reference crate). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Largest single fs read/write; Node rejects buffers over 2 GiB per call. */
const IO_CHUNK_BYTES = 64 << 20;

if (endianness() !== "LE") {
  // Typed-array views below assume the host is little-endian, as the file is.
  throw new Error("anvil: safetensors I/O requires a little-endian host");
}

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Byte offsets relative to the start of the data region. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** Absolute file offset of the data region. */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
}

// ---------------------------------------------------------------------------------------------
// dtype conversion

let f16Table: Uint32Array | null = null;

/** f32 bit patterns of all 65536 half values (exact; NaN payloads kept). */
function halfToFloatTable(): Uint32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  const floats = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = h >>> 15;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[h] = ((sign << 31) | 0x7f800000 | (mant << 13)) >>> 0; // inf, or NaN with its payload
    } else {
      const mag = exp === 0 ? mant * 2 ** -24 : (1024 + mant) * 2 ** (exp - 25); // exact in f32
      floats[h] = sign ? -mag : mag;
    }
  }
  f16Table = bits;
  return bits;
}

export function f16ToF32(src: Uint16Array, dst: Float32Array): void {
  const table = halfToFloatTable();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
}

// bf16 <-> f32: one implementation for files and tensors (src/backend/bf16.ts).
export { bf16ToF32, f32ToBf16 };

/** f32 -> IEEE half, round to nearest even, with subnormals; |x| >= 65520 becomes inf. */
export function f32ToF16(src: Float32Array, dst: Uint16Array): void {
  const inp = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i]!;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let h: number;
    if (abs > 0x7f800000) {
      h = 0x7e00 | ((abs >>> 13) & 0x3ff); // quiet NaN, high payload bits kept
    } else if (abs >= 0x477ff000) {
      h = 0x7c00; // 65520 and above (and inf): the tie at 65520 rounds to even = inf
    } else if (abs < 0x38800000) {
      // Below 2^-14: a half subnormal m * 2^-24. |x| * 2^24 is exact in a double; round it.
      const v = Math.abs(src[i]!) * 16777216;
      let m = Math.floor(v);
      const frac = v - m;
      if (frac > 0.5 || (frac === 0.5 && (m & 1) === 1)) m++;
      h = m; // m == 0x400 is the smallest normal: the encoding carries over correctly
    } else {
      const rebased = abs - 0x38000000; // exponent bias 127 -> 15
      h = (rebased + 0xfff + ((rebased >>> 13) & 1)) >>> 13;
    }
    dst[i] = sign | h;
  }
}

// ---------------------------------------------------------------------------------------------
// reading

async function readExactly(fh: FileHandle, into: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(IO_CHUNK_BYTES, into.length - done);
    const { bytesRead } = await fh.read(into, done, len, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(`${what}: unexpected end of file after ${done} of ${into.length} bytes`);
    }
    done += bytesRead;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Validate a parsed header object against the file's data-region size. */
function validateHeader(json: unknown, path: string, dataBytes: number): Omit<SafetensorsHeader, "path" | "fileSize" | "dataStart"> {
  if (!isPlainObject(json)) throw new SafetensorsError(`${path}: header is not a JSON object`);
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
        throw new SafetensorsError(`${path}: "__metadata__" must be an object of string values`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor "${name}" in ${path}`;
    if (!isPlainObject(entry)) throw new SafetensorsError(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw new SafetensorsError(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * DTYPE_BYTES[dtype]!;
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} shape [${shape}] needs ${expected}`,
      );
    }
    if (end > dataBytes) {
      throw new SafetensorsError(
        `${where}: data_offsets [${begin}, ${end}] extend past the data region (${dataBytes} bytes); the file is truncated or corrupt`,
      );
    }
    tensors.set(name, { name, dtype, shape: shape as number[], numel, begin, end });
  }
  // The tensors must tile the data region: sort by start and walk.
  const ordered = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: TensorInfo | null = null;
  for (const t of ordered) {
    if (t.begin < cursor) {
      throw new SafetensorsError(
        `${path}: tensor "${t.name}" [${t.begin}, ${t.end}] overlaps tensor "${prev!.name}" [${prev!.begin}, ${prev!.end}]`,
      );
    }
    if (t.begin > cursor) {
      throw new SafetensorsError(`${path}: ${t.begin - cursor} unaccounted bytes before tensor "${t.name}" at offset ${cursor}`);
    }
    cursor = t.end;
    prev = t;
  }
  if (cursor !== dataBytes) {
    throw new SafetensorsError(`${path}: ${dataBytes - cursor} trailing bytes after the last tensor (header and file disagree)`);
  }
  return { tensors, metadata };
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) throw new SafetensorsError(`${path}: ${fileSize} bytes is too short for a safetensors file`);
  const lenBuf = new Uint8Array(8);
  await readExactly(fh, lenBuf, 0, path);
  const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; not a safetensors file?`);
  }
  const headerBytes = Number(n);
  if (8 + headerBytes > fileSize) {
    throw new SafetensorsError(`${path}: header length ${headerBytes} exceeds the file size (${fileSize} bytes); truncated file?`);
  }
  const raw = new Uint8Array(headerBytes);
  await readExactly(fh, raw, 8, `${path} header`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    throw new SafetensorsError(`${path}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerBytes;
  const { tensors, metadata } = validateHeader(json, path, fileSize - dataStart);
  return { path, fileSize, dataStart, tensors, metadata };
}

/** Read and validate the header of a safetensors file (reads no tensor data). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openOrThrow(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

async function openOrThrow(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (e) {
    throw new SafetensorsError(`cannot open ${path}: ${(e as Error).message}`);
  }
}

/** Read one tensor as f32. Non-finite values are an error unless allowed (they mean corruption). */
async function readTensorData(
  fh: FileHandle,
  header: SafetensorsHeader,
  t: TensorInfo,
  allowNonFinite: boolean,
): Promise<Float32Array> {
  const where = `tensor "${t.name}" in ${header.path}`;
  const pos = header.dataStart + t.begin;
  const out = new Float32Array(t.numel);
  if (t.dtype === "F32") {
    await readExactly(fh, new Uint8Array(out.buffer), pos, where);
  } else if (t.dtype === "F16" || t.dtype === "BF16") {
    const half = new Uint16Array(t.numel);
    await readExactly(fh, new Uint8Array(half.buffer), pos, where);
    if (t.dtype === "F16") f16ToF32(half, out);
    else bf16ToF32(half, out);
  } else {
    throw new SafetensorsError(`${where}: dtype ${t.dtype} is not supported (Anvil loads F32, F16 and BF16)`);
  }
  if (!allowNonFinite) {
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i]!)) {
        throw new SafetensorsError(`${where}: element ${i} is ${out[i]}; the weights are corrupt or diverged`);
      }
    }
  }
  return out;
}

export interface LoadedTensor {
  data: Float32Array;
  shape: number[];
  /** dtype in the file. */
  dtype: string;
}

export interface ReadOptions {
  /** Only these tensors (default: all). A name not in the file is an error. */
  names?: Iterable<string>;
  /** Accept NaN/inf values (default false: they are reported as corruption). */
  allowNonFinite?: boolean;
}

/** Read tensors of one safetensors file, converted to f32. */
export async function readSafetensors(path: string, opts: ReadOptions = {}): Promise<Map<string, LoadedTensor>> {
  const fh = await openOrThrow(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const names = opts.names ? [...opts.names] : [...header.tensors.keys()];
    const out = new Map<string, LoadedTensor>();
    for (const name of names) {
      const t = header.tensors.get(name);
      if (!t) throw new SafetensorsError(`tensor "${name}" is not in ${path}`);
      const data = await readTensorData(fh, header, t, opts.allowNonFinite ?? false);
      out.set(name, { data, shape: [...t.shape], dtype: t.dtype });
    }
    return out;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// model directories (single file or sharded)

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";


/** The shard files of a model directory and, for sharded checkpoints, the weight map. */
async function modelFiles(dir: string): Promise<{ files: string[]; weightMap: Map<string, string> | null }> {
  const single = join(dir, SINGLE_FILE);
  if (await exists(single)) return { files: [single], weightMap: null };
  const indexPath = join(dir, INDEX_FILE);
  if (!(await exists(indexPath))) {
    throw new SafetensorsError(`${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found`);
  }
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw new SafetensorsError(`${indexPath}: malformed JSON (${(e as Error).message})`);
  }
  const wm = isPlainObject(index) ? index["weight_map"] : undefined;
  if (!isPlainObject(wm)) throw new SafetensorsError(`${indexPath}: "weight_map" must be an object of tensor -> file`);
  const weightMap = new Map<string, string>();
  const root = resolve(dir);
  for (const [name, file] of Object.entries(wm)) {
    if (typeof file !== "string" || file === "") {
      throw new SafetensorsError(`${indexPath}: weight_map["${name}"] must be a file name, got ${JSON.stringify(file)}`);
    }
    const full = resolve(root, file);
    if (!full.startsWith(root + sep)) {
      throw new SafetensorsError(`${indexPath}: weight_map["${name}"] = ${JSON.stringify(file)} points outside ${dir}`);
    }
    weightMap.set(name, full);
  }
  const files = [...new Set(weightMap.values())].sort();
  if (files.length === 0) throw new SafetensorsError(`${indexPath}: weight_map is empty`);
  return { files, weightMap };
}

/** Extra tensors that are known to be safe to skip, with the reason given in the note. */
function ignorableExtra(name: string, expected: Map<string, number[]>): string | null {
  if (name === LM_HEAD_PARAM && !expected.has(LM_HEAD_PARAM)) {
    return `ignored ${LM_HEAD_PARAM}: the config ties word embeddings, so the LM head is the embedding matrix`;
  }
  if (name.endsWith(".rotary_emb.inv_freq")) return `ignored ${name}: RoPE frequencies are recomputed from rope_theta`;
  return null;
}

export interface LoadWeightsOptions {
  /** Receives informational notes (ignored tensors). Default: console.warn. */
  onNote?: (message: string) => void;
  allowNonFinite?: boolean;
}

/**
 * Load every tensor of `expectedShapes` from `dir` (model.safetensors, or the shards listed in
 * model.safetensors.index.json), as f32. Missing tensors, wrong shapes, unknown extra tensors and
 * corrupt files are errors naming the tensor and file.
 */
export async function loadWeights(
  dir: string,
  expectedShapes: Map<string, number[]>,
  opts: LoadWeightsOptions = {},
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  await forEachWeight(dir, expectedShapes, (name, data) => void out.set(name, data), opts);
  return out;
}

/**
 * loadWeights one tensor at a time: `use` gets each tensor of `expectedShapes` as f32, in their
 * order, after the whole checkpoint has been checked (names, shapes, shards). Only one f32 copy
 * is alive at a time unless `use` keeps it, so a caller that uploads each tensor (in bf16, say)
 * never holds the whole model in f32 on the host.
 */
export async function forEachWeight(
  dir: string,
  expectedShapes: Map<string, number[]>,
  use: (name: string, data: Float32Array) => void,
  opts: LoadWeightsOptions = {},
): Promise<void> {
  const note = opts.onNote ?? ((m: string) => console.warn(`anvil: ${m}`));
  const { files, weightMap } = await modelFiles(dir);
  const handles = new Map<string, FileHandle>();
  try {
    const located = new Map<string, { header: SafetensorsHeader; info: TensorInfo }>();
    const headers = new Map<string, SafetensorsHeader>();
    for (const file of files) {
      const fh = await openOrThrow(file);
      handles.set(file, fh);
      const header = await readHeaderFrom(fh, file);
      headers.set(file, header);
      for (const info of header.tensors.values()) {
        const other = located.get(info.name);
        if (other) {
          throw new SafetensorsError(`tensor "${info.name}" appears in both ${other.header.path} and ${file}`);
        }
        located.set(info.name, { header, info });
      }
    }
    if (weightMap) {
      for (const [name, file] of weightMap) {
        if (!headers.get(file)!.tensors.has(name)) {
          throw new SafetensorsError(`tensor "${name}" is listed in ${INDEX_FILE} for ${basename(file)} but is not in that file`);
        }
      }
    }

    const where = files.length === 1 ? files[0]! : `${dir} (${files.length} shards)`;
    const missing = [...expectedShapes.keys()].filter((n) => !located.has(n));
    if (missing.length > 0) {
      const list = missing.slice(0, 5).map((n) => `"${n}"`).join(", ");
      throw new SafetensorsError(
        `missing tensor${missing.length > 1 ? "s" : ""} ${list}${missing.length > 5 ? ` and ${missing.length - 5} more` : ""} in ${where}`,
      );
    }
    const unexpected: string[] = [];
    for (const name of located.keys()) {
      if (expectedShapes.has(name)) continue;
      const reason = ignorableExtra(name, expectedShapes);
      if (reason) note(reason);
      else unexpected.push(name);
    }
    if (unexpected.length > 0) {
      const list = unexpected.slice(0, 5).map((n) => `"${n}" (${located.get(n)!.header.path})`).join(", ");
      throw new SafetensorsError(
        `unexpected tensor${unexpected.length > 1 ? "s" : ""} ${list}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ""}: ` +
          `the checkpoint does not match config.json`,
      );
    }
    for (const [name, shape] of expectedShapes) {
      const { header, info } = located.get(name)!;
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new SafetensorsError(
          `tensor "${name}" in ${header.path} has shape [${info.shape}], expected [${shape}] from config.json`,
        );
      }
    }
    for (const name of expectedShapes.keys()) {
      const { header, info } = located.get(name)!;
      use(name, await readTensorData(handles.get(header.path)!, header, info, opts.allowNonFinite ?? false));
    }
  } finally {
    for (const fh of handles.values()) await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// writing

export interface TensorToSave {
  data: Float32Array;
  shape: number[];
}

export interface SaveOptions {
  /** Storage dtype (default F32). */
  dtype?: SafetensorsDtype;
  /** String metadata; `format: "pt"` is added unless given, as transformers requires it. */
  metadata?: Record<string, string>;
}

/** Elements converted per write, bounding the scratch buffer at 4 MiB. */
const CONVERT_CHUNK = 1 << 20;

/**
 * Write tensors to `path` as safetensors: names sorted, header padded with spaces to a multiple
 * of 8 bytes (so the data region is aligned), written to a temp file and renamed into place.
 */
export async function saveSafetensors(
  path: string,
  tensors: Map<string, TensorToSave>,
  opts: SaveOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? "F32";
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
    throw new TypeError(`saveSafetensors: dtype must be "F32", "F16" or "BF16", got ${JSON.stringify(dtype)}`);
  }
  const metadata: Record<string, string> = { format: "pt", ...(opts.metadata ?? {}) };
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new TypeError(`saveSafetensors: metadata["${k}"] must be a string`);
  }
  const size = DTYPE_BYTES[dtype]!;
  // Sort by UTF-16 code units: deterministic, and what JSON.stringify preserves.
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    if (name === "" || name === "__metadata__") throw new TypeError(`saveSafetensors: invalid tensor name "${name}"`);
    const { data, shape } = tensors.get(name)!;
    if (!(data instanceof Float32Array)) throw new TypeError(`saveSafetensors: tensor "${name}" data must be a Float32Array`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(`saveSafetensors: tensor "${name}" shape must be non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== data.length) {
      throw new RangeError(`saveSafetensors: tensor "${name}" has ${data.length} elements but shape [${shape}] needs ${numel}`);
    }
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + numel * size] };
    offset += numel * size;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(headerBytes);
    headerBytes = p;
  }

  await withAtomicFile(path, async (fh) => {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
    await writeAll(fh, prefix);
    await writeAll(fh, headerBytes);
    const scratch = dtype === "F32" ? null : new Uint16Array(CONVERT_CHUNK);
    for (const name of names) {
      const { data } = tensors.get(name)!;
      if (scratch === null) {
        await writeAll(fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        continue;
      }
      for (let start = 0; start < data.length; start += CONVERT_CHUNK) {
        const part = data.subarray(start, Math.min(data.length, start + CONVERT_CHUNK));
        const dst = scratch.subarray(0, part.length);
        if (dtype === "BF16") f32ToBf16(part, dst);
        else f32ToF16(part, dst);
        await writeAll(fh, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
      }
    }
  });
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const len = Math.min(IO_CHUNK_BYTES, bytes.length - done);
    const { bytesWritten } = await fh.write(bytes, done, len, null);
    done += bytesWritten;
  }
}
