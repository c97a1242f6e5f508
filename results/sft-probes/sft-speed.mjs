// SFT step time on task batches (B=16, 8 batches, tiny preset), for A/B of two builds (DIST_ROOT:
// a checkout with dist/ built): args DIST_ROOT TASK DMIN DMAX; env MODEL (checkpoint), T (threads)
const [root, task, dmin, dmax] = process.argv.slice(2);
const { createBackend } = await import(`${root}/dist/src/backend/index.js`);
const { Policy } = await import(`${root}/dist/src/rl/policy.js`);
const { packBatch } = await import(`${root}/dist/src/rl/batch.js`);
const { supervisedGradient } = await import(`${root}/dist/src/rl/step.js`);
const { generate, completionFor } = await import(`${root}/dist/src/tasks/index.js`);
const be = await createBackend("cpu", { threads: +(process.env.T ?? 2) });
// MODEL: a checkpoint; default a fresh tiny model fitted to the task (the timing does not depend on the weights).
let model = process.env.MODEL;
if (!model) {
  const { initModel } = await import(`${root}/dist/src/model/init.js`);
  const { taskCorpus } = await import(`${root}/dist/src/tasks/index.js`);
  const { mkdtempSync } = await import("node:fs");
  model = `${mkdtempSync("/tmp/anvil-sft-speed-")}/model`;
  await initModel({ preset: "tiny", corpus: taskCorpus(task), out: model, seed: 1 });
}
const p = await Policy.load(model, be);
const batches = Array.from({ length: 8 }, (_, s) => packBatch(Array.from({ length: 16 }, (_, j) => { const i = generate(task, { depth: +dmin + ((s * 16 + j) % (+dmax - +dmin + 1)), seed: 1e6 + s * 16 + j }); return { promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }; }), p.padId));
p.model.zeroGrads();
await supervisedGradient(p.model, batches[0], 16);
const t0 = performance.now(); let loss = 0;
for (const b of batches) loss += await supervisedGradient(p.model, b, 16);
const dt = (performance.now() - t0) / 1000 / batches.length;
const toks = batches.reduce((a, b) => a + b.tokens, 0) / batches.length;
console.log(`${root} ${task} d${dmin}-${dmax}: ${dt.toFixed(3)} s/step, ${(toks/dt).toFixed(0)} completion tok/s, loss ${(loss/batches.length).toFixed(4)}`);
