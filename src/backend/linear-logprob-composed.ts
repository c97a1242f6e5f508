// linearLogprobForwardBackward as the forward then the backward: the same results and memory
// bound as the one-pass op, with the logits made twice (4 matmuls instead of 3). The reference
// the tests hold the one-pass op to, and the op on backends without a one-pass kernel.
import type { Backend } from "./backend.js";

export function linearLogprobComposed(be: Backend, ...args: Parameters<Backend["linearLogprobForwardBackward"]>): void {
  const [logprob, entropy, dhidden, dweight, hidden, weight, targets, dlogprob, dentropy, temperature] = args;
  const lse = be.zeros([logprob.size]);
  be.linearLogprobForward(logprob, entropy, lse, hidden, weight, targets, temperature);
  be.linearLogprobBackward(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, lse, entropy, temperature);
  lse.dispose();
}
