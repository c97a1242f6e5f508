// Held-out evaluation: greedy decoding, verified answers, split by answerability.
import { judge } from "../tasks/verify.js";
import type { Instance } from "../tasks/types.js";
import type { Policy } from "./policy.js";

export interface EvalResult {
  n: number;
  acc: number;
  acc_answerable: number;
  acc_unanswerable: number;
  abstain_rate: number;
  /** Abstentions on answerable items (over-caution). */
  abstain_answerable: number;
  format_rate: number;
  completion_len_mean: number;
}

export interface EvalSample {
  id: string;
  answerable: boolean;
  answer: string;
  completion: string;
  correct: boolean;
}

export async function evaluate(policy: Policy, instances: Instance[], maxNewTokens: number): Promise<{ result: EvalResult; samples: EvalSample[] }> {
  const gens = await policy.generate(
    instances.map((i) => i.prompt),
    { maxNewTokens, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 0 },
  );
  const samples: EvalSample[] = [];
  const js = gens.map((g, k) => {
    const j = judge(instances[k], g.text);
    samples.push({ id: instances[k].id, answerable: instances[k].answerable, answer: instances[k].answer, completion: g.text, correct: j.correct });
    return j;
  });
  const frac = (pred: (k: number) => boolean, over: number[]) => (over.length ? over.filter(pred).length / over.length : 0);
  const all = instances.map((_, k) => k);
  const ans = all.filter((k) => instances[k].answerable);
  const unans = all.filter((k) => !instances[k].answerable);
  return {
    result: {
      n: instances.length,
      acc: frac((k) => js[k].correct, all),
      acc_answerable: frac((k) => js[k].correct, ans),
      acc_unanswerable: frac((k) => js[k].correct, unans),
      abstain_rate: frac((k) => js[k].abstained, all),
      abstain_answerable: frac((k) => js[k].abstained, ans),
      format_rate: frac((k) => js[k].format, all),
      completion_len_mean: gens.reduce((a, g) => a + g.tokens.length, 0) / Math.max(1, gens.length),
    },
    samples,
  };
}
