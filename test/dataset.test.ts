import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { DatasetError, parseDataset, readDataset, writeDataset } from "../src/tasks/dataset.js";
import { generateDataset } from "../src/tasks/index.js";

const dir = mkdtempSync(join(tmpdir(), "anvil-dataset-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorsOf(text: string, maxErrors?: number): DatasetError {
  try {
    parseDataset(text, { source: "user.jsonl", maxErrors });
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error("expected a DatasetError");
}

describe("JSONL datasets", () => {
  test("generated datasets round-trip through a file", async () => {
    const data = [...generateDataset("graphla", { n: 6, depth: 3, seed: 1 }), ...generateDataset("graphli", { n: 6, depth: 2, seed: 1 })];
    const file = join(dir, "sub", "data.jsonl");
    await writeDataset(file, data);
    expect(await readDataset(file)).toEqual(data);
  });

  test("user datasets need only prompt and answer", () => {
    const got = parseDataset(
      ['{"prompt": "2+2?", "answer": "4"}', "", '{"prompt": "x?", "answer": "Unknown", "trace": "no idea"}', '{"prompt": "n?", "answer": 7}'].join("\n"),
      { source: "/tmp/user.jsonl" },
    );
    expect(got.map((i) => [i.answer, i.answerable, i.id, i.task, i.trace])).toEqual([
      ["4", true, "user.jsonl:1", "custom", ""],
      ["Unknown", false, "user.jsonl:3", "custom", "no idea"],
      ["7", true, "user.jsonl:4", "custom", ""],
    ]);
  });

  test("bad lines are all reported with line number and reason", () => {
    const text = [
      '{"prompt": "ok", "answer": "1"}',
      "{not json",
      '{"answer": "1"}',
      '{"prompt": 3, "answer": "1"}',
      "",
      '{"prompt": "p"}',
      '{"prompt": "p", "answer": null}',
      "[1, 2]",
      '{"prompt": "p", "answer": "1", "depth": -2}',
      '{"prompt": "p", "answer": "unknown", "answerable": true}',
    ].join("\n");
    const e = errorsOf(text);
    expect(e.errors.map((x) => x.line)).toEqual([2, 3, 4, 6, 7, 8, 9, 10]);
    expect(e.errors[0]!.reason).toMatch(/invalid JSON/);
    expect(e.errors[1]!.reason).toBe('missing field "prompt"');
    expect(e.errors[2]!.reason).toMatch(/"prompt" must be a string, got number/);
    expect(e.errors[3]!.reason).toBe('missing field "answer"');
    expect(e.errors[4]!.reason).toMatch(/"answer" must be a string.*got null/);
    expect(e.errors[5]!.reason).toMatch(/expected a JSON object, got array/);
    expect(e.errors[6]!.reason).toMatch(/"depth" must be a non-negative integer/);
    expect(e.errors[7]!.reason).toMatch(/"answerable" is true but answer "unknown" means unknown/);
    expect(e.message).toContain("user.jsonl");
    expect(e.message).toContain("line 6: missing field \"answer\"");
  });

  test("error collection stops at the limit", () => {
    const e = errorsOf(Array.from({ length: 50 }, () => "oops").join("\n"), 5);
    expect(e.errors.length).toBe(5);
    expect(e.message).toMatch(/stopped after 5 errors/);
  });

  test("invalid UTF-8 is an error naming the lines; a BOM is fine", async () => {
    const file = join(dir, "latin1.jsonl");
    const good = Buffer.from('{"prompt": "caf\u00e9?", "answer": "1"}\n');
    const bad = Buffer.from('{"prompt": "caf\xe9?", "answer": "1"}\n', "latin1"); // é as one Latin-1 byte
    writeFileSync(file, Buffer.concat([good, bad, good, bad]));
    const e = await readDataset(file).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DatasetError);
    expect((e as DatasetError).errors).toEqual([
      { line: 2, reason: "not valid UTF-8 text (save the file as UTF-8)" },
      { line: 4, reason: "not valid UTF-8 text (save the file as UTF-8)" },
    ]);
    expect((e as Error).message).toMatch(/latin1\.jsonl: invalid dataset\n  line 2: not valid UTF-8/);
    const bom = join(dir, "bom.jsonl");
    writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good]));
    expect((await readDataset(bom))[0]!.prompt).toBe("caf\u00e9?");
  });

  test("an empty file is an error", async () => {
    const file = join(dir, "empty.jsonl");
    writeFileSync(file, "\n  \n");
    await expect(readDataset(file)).rejects.toThrow(/empty dataset/);
    expect(() => parseDataset("")).toThrow(DatasetError);
  });
});
