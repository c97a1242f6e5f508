// The package's root directory, found from this module's location (src/util/ in the sources,
// dist/src/util/ when built), so files outside src (bench/, kernels/) are located at run time
// instead of imported.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/** The nearest directory above this module with anvil-rl's package.json. */
export function packageRoot(): string {
  if (root) return root;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; ) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "anvil-rl") return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error("anvil: cannot find the anvil-rl package root above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** True when this code runs from the compiled tree (dist/), false from the TypeScript sources. */
export function runningFromDist(): boolean {
  return fileURLToPath(import.meta.url).startsWith(join(packageRoot(), "dist") + "/");
}
