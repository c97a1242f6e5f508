// SFT step time on task batches (B=16, 8 batches, tiny preset checkpoint), for A/B of two builds: args DIST_ROOT TASK DMIN DMAX; env MODEL, T
const [root, task, dmin, dmax] = process.argv.slice(2);
const { createBackend } = await import(`${root}/dist/src/backend/index.js`);
const { Policy } = await import(`${root}/dist/src/rl/policy.js`);
const { packBatch } = await import(`${root}/dist/src/rl/batch.js`);
const { supervisedGradient } = await import(`${root}/dist/src/rl/step.js`);
const { generate, completionFor } = await import(`${root}/dist/src/tasks/index.js`);
const be = await createBackend("cpu", { threads: +(process.env.T ?? 2) });
const p = await Policy.load(process.env.MODEL ?? "/work/main/runs/avg-li6/graphli/weak", be);
const batches = Array.from({ length: 8 }, (_, s) => packBatch(Array.from({ length: 16 }, (_, j) => { const i = generate(task, { depth: +dmin + ((s * 16 + j) % (+dmax - +dmin + 1)), seed: 1e6 + s * 16 + j }); return { promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }; }), p.padId));
p.model.zeroGrads();
await supervisedGradient(p.model, batches[0], 16);
const t0 = performance.now(); let loss = 0;
for (const b of batches) loss += await supervisedGradient(p.model, b, 16);
const dt = (performance.now() - t0) / 1000 / batches.length;
const toks = batches.reduce((a, b) => a + b.tokens, 0) / batches.length;
console.log(`${root} ${task} d${dmin}-${dmax}: ${dt.toFixed(3)} s/step, ${(toks/dt).toFixed(0)} completion tok/s, loss ${(loss/batches.length).toFixed(4)}`);
