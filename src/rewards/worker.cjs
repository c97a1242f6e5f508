// Piscina worker for user reward modules (see pool.ts). Plain JavaScript with no imports from
// the package, so it loads unchanged from src/ (vitest) and from dist/ (the build copies it).
// CommonJS on purpose: piscina require()s its entry, and on Node >= 20.19 requiring an ES module
// goes through a path that aborts the whole process (a failed CHECK in CreateRequiredModuleFacade)
// when the worker is terminated while it loads, as a pool closed right after it opens can do.
// User modules are ES modules and are loaded by import(), which a termination just rejects.
//
// Task: { module: file URL, completion, instance, port?, check? } -> { value } | { invalid }.
// `port` receives "start" when the call begins, so the pool times the call, not the queue.

const cache = new Map();

async function load(url) {
  let fn = cache.get(url);
  if (fn) return fn;
  const mod = await import(url);
  fn = typeof mod.reward === "function" ? mod.reward : typeof mod.default === "function" ? mod.default : null;
  if (!fn) throw new Error(`${url} exports neither a function named "reward" nor a default function`);
  cache.set(url, fn);
  return fn;
}

module.exports = async function run(task) {
  if (task.port) task.port.postMessage("start");
  try {
    const fn = await load(task.module);
    if (task.check) return { value: 0 };
    const value = await fn(task.completion, task.instance);
    // Only numbers cross back; anything else is reported, not cloned.
    return typeof value === "number" ? { value } : { invalid: value === null ? "null" : typeof value };
  } finally {
    if (task.port) task.port.close();
  }
};
