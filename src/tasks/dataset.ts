// JSONL datasets: one instance per line. Generated datasets round-trip every Instance field;
// user datasets need only {prompt, answer} and get the rest filled in:
//   answer      string (numbers and booleans are accepted and stringified)
//   answerable  inferred: false iff the answer means "unknown" (see ABSTAIN_SYNONYMS)
//   trace ""  depth 0  distractors 0  task "custom"  id "<file>:<line>"  seed <line>
// Bad lines are all reported (up to maxErrors) with their 1-based line number and the reason.
// Files are read as bytes and each line must be valid UTF-8: a silent U+FFFD in a prompt or an
// answer changes what the model is trained on without a word.

import { isUtf8 } from "node:buffer";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Instance } from "./types.js";
import { normalizeAnswer } from "./verify.js";

export interface LineError {
  /** 1-based line number in the file. */
  line: number;
  reason: string;
}

export class DatasetError extends Error {
  constructor(
    readonly source: string,
    readonly errors: LineError[],
    truncated = false,
  ) {
    const list = errors.map((e) => (e.line > 0 ? `  line ${e.line}: ${e.reason}` : `  ${e.reason}`)).join("\n");
    super(`${source}: invalid dataset\n${list}${truncated ? `\n  (stopped after ${errors.length} errors)` : ""}`);
    this.name = "DatasetError";
  }
}

export function instancesToJsonl(instances: readonly Instance[]): string {
  return instances.map((inst) => JSON.stringify(inst)).join("\n") + (instances.length ? "\n" : "");
}

export async function writeDataset(path: string, instances: readonly Instance[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, instancesToJsonl(instances), "utf8");
}

export interface ParseOptions {
  /** Name used in errors and default ids (default "dataset"). */
  source?: string;
  /** Stop collecting after this many bad lines (default 20). */
  maxErrors?: number;
}

export const typeName = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

/** Parses JSONL text; throws DatasetError listing every bad line (up to maxErrors). */
export function parseDataset(text: string, opts: ParseOptions = {}): Instance[] {
  return parseDatasetLines(text, opts).map((l) => l.instance);
}

/** A dataset item with the 1-based line it came from (for errors about it later). */
export interface DatasetLine {
  instance: Instance;
  line: number;
}

/** parseDataset, keeping each item's line number. */
export function parseDatasetLines(text: string, opts: ParseOptions = {}): DatasetLine[] {
  const source = opts.source ?? "dataset";
  return parseJsonlLines(text, source, opts.maxErrors ?? 20, (raw, line) => parseRecord(raw, line, source)).map(({ item, line }) => ({ instance: item, line }));
}

/**
 * The items of a JSONL text, each with its 1-based line: `parse` turns a non-blank line into an
 * item or the reason it is bad. Throws DatasetError listing the bad lines (up to maxErrors), or
 * saying the text holds none. Shared by every JSONL input (datasets, preference pairs).
 */
export function parseJsonlLines<T>(text: string, source: string, maxErrors: number, parse: (raw: string, line: number) => T | string): { item: T; line: number }[] {
  const out: { item: T; line: number }[] = [];
  const errors: LineError[] = [];
  const lines = text.split(/\r?\n/);
  let truncated = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    const line = i + 1;
    const res = parse(raw, line);
    if (typeof res === "string") {
      if (errors.length >= maxErrors) {
        truncated = true;
        break;
      }
      errors.push({ line, reason: res });
    } else out.push({ item: res, line });
  }
  if (errors.length > 0) throw new DatasetError(source, errors, truncated);
  if (out.length === 0) throw new DatasetError(source, [{ line: 0, reason: "empty dataset: no JSON lines found" }]);
  return out;
}

export async function readDataset(path: string, opts: Omit<ParseOptions, "source"> = {}): Promise<Instance[]> {
  return (await readDatasetLines(path, opts)).map((l) => l.instance);
}

/** readDataset, keeping each item's line number. */
export async function readDatasetLines(path: string, opts: Omit<ParseOptions, "source"> = {}): Promise<DatasetLine[]> {
  return parseDatasetLines(await readJsonlText(path, opts.maxErrors ?? 20), { ...opts, source: path });
}

/** A JSONL file's text: DatasetError when it cannot be read or a line is not valid UTF-8. */
export async function readJsonlText(path: string, maxErrors = 20): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new DatasetError(path, [{ line: 0, reason: `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }]);
  }
  return decodeUtf8Lines(bytes, path, maxErrors);
}

/** Decodes a file as UTF-8, failing with the numbers of the lines that are not valid UTF-8. */
function decodeUtf8Lines(bytes: Buffer, source: string, maxErrors: number): string {
  if (isUtf8(bytes)) return new TextDecoder("utf-8").decode(bytes); // drops a BOM
  const errors: LineError[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length && errors.length < maxErrors; line++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    if (!isUtf8(bytes.subarray(start, end))) errors.push({ line, reason: "not valid UTF-8 text (save the file as UTF-8)" });
    start = end + 1;
  }
  throw new DatasetError(source, errors, start < bytes.length);
}

/** An Instance, or the reason the line is bad. */
function parseRecord(raw: string, line: number, source: string): Instance | string {
  let rec: unknown;
  try {
    rec = JSON.parse(raw);
  } catch (e) {
    return `invalid JSON (${(e as Error).message})`;
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) return `expected a JSON object, got ${typeName(rec)}`;
  const r = rec as Record<string, unknown>;

  if (!("prompt" in r)) return `missing field "prompt"`;
  if (typeof r.prompt !== "string") return `field "prompt" must be a string, got ${typeName(r.prompt)}`;
  if (r.prompt.trim() === "") return `field "prompt" is empty`;
  if (!("answer" in r)) return `missing field "answer"`;
  if (!["string", "number", "boolean"].includes(typeof r.answer))
    return `field "answer" must be a string (or number/boolean), got ${typeName(r.answer)}`;
  const answer = String(r.answer);

  const optional: [string, "string" | "int" | "boolean"][] = [
    ["id", "string"], ["task", "string"], ["trace", "string"], ["depth", "int"],
    ["distractors", "int"], ["answerable", "boolean"], ["seed", "int"],
  ];
  for (const [k, t] of optional) {
    const v = r[k];
    if (v === undefined) continue;
    const ok = t === "int" ? Number.isSafeInteger(v) && (v as number) >= 0 : typeof v === t;
    if (!ok) return `field "${k}" must be ${t === "int" ? "a non-negative integer" : `a ${t}`}, got ${JSON.stringify(v)}`;
  }
  const inferred = normalizeAnswer(answer).kind !== "abstain";
  if (r.answerable !== undefined && r.answerable !== inferred)
    return `field "answerable" is ${r.answerable} but answer ${JSON.stringify(answer)} ${inferred ? "is a value" : "means unknown"}`;

  const task = (r.task as string | undefined) ?? "custom";
  return {
    id: (r.id as string | undefined) ?? `${basename(source)}:${line}`,
    task,
    prompt: r.prompt,
    answer,
    trace: (r.trace as string | undefined) ?? "",
    depth: (r.depth as number | undefined) ?? 0,
    distractors: (r.distractors as number | undefined) ?? 0,
    answerable: inferred,
    seed: (r.seed as number | undefined) ?? line,
  };
}
