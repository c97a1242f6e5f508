// GraphLI ground-truth completion lengths in tokens (median and longest of 400, the set
// traceBudget uses) and the longest prompt, by depth, under a model's tokenizer.
// args: MODEL_DIR [DEPTHS]
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { generateDataset, completionFor } from "../../dist/src/tasks/index.js";
const [dir, depthsS] = process.argv.slice(2);
const p = await Policy.load(dir, await createBackend("cpu", { threads: 1 }));
for (const d of (depthsS ?? "1,2,3,4").split(",").map(Number)) {
  const items = generateDataset("graphli", { n: 400, depth: d, seed: 0xb0d9e7 });
  const L = items.map((i) => p.encodeCompletion(completionFor(i)).length).sort((a, b) => a - b);
  console.log(`depth ${d}: completion median ${L[200]} longest ${L.at(-1)}, prompt longest ${Math.max(...items.map((i) => p.encodePrompt(i.prompt).length))}`);
}
