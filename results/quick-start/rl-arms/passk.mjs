// Greedy accuracy against pass@k of sampled completions, answerable and unanswerable apart, on
// the held-out items `anvil train` evaluates on. Does the policy already have right answers RL
// could sharpen towards (pass@k well above greedy), or not?
//   node passk.mjs MODEL [k=8] [n=128] [temperature=1] [maxNewTokens=924]
import { createBackend } from "../../../dist/src/backend/index.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { evaluate } from "../../../dist/src/rl/eval.js";
import { heldOut } from "../../../dist/src/rl/run.js";
import { judge } from "../../../dist/src/tasks/verify.js";

const [model, k = "8", n = "128", temp = "1", mnt = "924"] = process.argv.slice(2);
const backend = await createBackend("cpu", { threads: 2 });
const policy = await Policy.load(model, backend);
const items = heldOut("graphli", +n, 1, 2, 1);
const { samples: greedy } = await evaluate(policy, items, +mnt);
const prompts = items.flatMap((i) => Array(+k).fill(i.prompt));
const sampled = await policy.generate(prompts, { maxNewTokens: +mnt, sampling: { temperature: +temp, topK: 0, topP: 1, minP: 0, greedy: false }, seed: 1 });
const rows = items.map((it, i) => {
  const js = sampled.slice(i * +k, (i + 1) * +k).map((g) => judge(it, g.text));
  return { answerable: it.answerable, greedy: greedy[i].correct, right: js.filter((j) => j.correct).length, abstained: js.filter((j) => j.abstained).length };
});
const pct = (x) => (100 * x).toFixed(1);
for (const [name, f] of [["answerable", (r) => r.answerable], ["unanswerable", (r) => !r.answerable]]) {
  const rs = rows.filter(f);
  const m = (g) => rs.reduce((a, r) => a + g(r), 0) / rs.length;
  console.log(`${name}: n=${rs.length} greedy ${pct(m((r) => +r.greedy))}%  sampled ${pct(m((r) => r.right / +k))}%  pass@${k} ${pct(m((r) => +(r.right > 0)))}%  ` +
    `all ${k} right ${pct(m((r) => +(r.right === +k)))}%  sampled abstain ${pct(m((r) => r.abstained / +k))}%  greedy-wrong but some sample right ${pct(m((r) => +(!r.greedy && r.right > 0)))}%`);
}
policy.model.dispose();
backend.destroy();
