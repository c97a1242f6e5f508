// JSON files read with errors that name the file: a bare "Unexpected token" after a crash or a
// hand edit leaves the user guessing which of a run's files is damaged.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

function parse(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message}); fix or remove the file`);
  }
}

export function readJsonFileSync<T = unknown>(path: string): T {
  return parse(path, readFileSync(path, "utf8")) as T;
}

export async function readJsonFile<T = unknown>(path: string): Promise<T> {
  return parse(path, await readFile(path, "utf8")) as T;
}
