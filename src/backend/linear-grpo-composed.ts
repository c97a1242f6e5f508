// linearGrpoLoss as a composition of a backend's other ops: linearLogprobForward, grpoLoss,
// scale, linearLogprobBackward. The same results and the same memory bound as the one-pass op
// ((N, V) never exists), but the logits are made twice (4 matmuls instead of 3). It is the
// reference the tests and policyGradient's two-pass path hold the one-pass op to, and webgpu's
// fallback for LM heads too large for one storage binding.
import type { Backend } from "./backend.js";

export function linearGrpoLossComposed(be: Backend, ...args: Parameters<Backend["linearGrpoLoss"]>): void {
  const [dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, oldLogprob, refLogprob, rolloutLogprob, advantages, mask, temperature, o] = args;
  const n = o.B * o.T;
  const lse = be.zeros([n]), dlp = be.zeros([n]), dent = be.zeros([n]);
  be.linearLogprobForward(logprob, entropy, lse, hidden, weight, targets, temperature);
  const old = oldLogprob ?? be.zeros([n]);
  if (!oldLogprob) be.copy(old, logprob);
  const { lossScale = 1, ...loss } = o;
  be.grpoLoss(dlp, dent, stats, logprob, old, refLogprob, rolloutLogprob, entropy, advantages, mask, loss);
  if (lossScale !== 1) {
    be.scale(dlp, lossScale);
    be.scale(dent, lossScale);
  }
  be.linearLogprobBackward(dhidden, dweight, dlp, dent, hidden, weight, targets, lse, entropy, temperature);
  for (const t of [lse, dlp, dent]) t.dispose();
  if (!oldLogprob) old.dispose();
}
