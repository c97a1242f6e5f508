#!/usr/bin/python3
"""PyTorch peer for bench/preference.ts: one DPO step as TRL's DPOTrainer takes it, in plain torch
(float32, autograd): the chosen and rejected sequences of every pair concatenated into one padded
batch (chosen rows first), full logits, log_softmax + gather of the completion tokens, summed per
sequence, the sigmoid loss -log sigmoid(beta * ((c - c_ref) - (r - r_ref))) against the given
reference log-probs, backward, grad-norm clipping to 1, torch.optim.AdamW.

Args: one JSON object {config, name, pairs: [{prompt, chosen, rejected}] (token ids), ref: {chosen,
rejected}, minTime, maxTime, flops, tokens}. Prints one JSON array of BenchRow on its last line."""
import json
import os
import sys

import torch
import torch.nn.functional as F

from decoder import Decoder, bench

args = json.loads(sys.argv[1])
threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
torch.set_num_threads(threads)
c = args["config"]
model = Decoder(c, torch.Generator().manual_seed(0))
params = model.parameters()
opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.99), weight_decay=0.0)

# The packed batch: row i < k the chosen sequence of pair i, row k + i its rejected one; targets
# are the next tokens inside the completion, -100 elsewhere (no loss there).
pairs = args["pairs"]
k = len(pairs)
seqs = [(p["prompt"], p["chosen"]) for p in pairs] + [(p["prompt"], p["rejected"]) for p in pairs]
T = max(len(a) + len(b) for a, b in seqs)
ids = torch.zeros(2 * k, T, dtype=torch.long)
targets = torch.full((2 * k, T), -100, dtype=torch.long)
for row, (prompt, completion) in enumerate(seqs):
    full = prompt + completion
    ids[row, : len(full)] = torch.tensor(full)
    targets[row, len(prompt) - 1: len(full) - 1] = torch.tensor(completion)
mask = targets >= 0
ref_c = torch.tensor(args["ref"]["chosen"])
ref_r = torch.tensor(args["ref"]["rejected"])
beta = 0.1


def step():
    opt.zero_grad(set_to_none=True)
    logits = model.forward(ids) @ model.head.T  # (2k, T, V)
    lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    sums = (lp * mask).sum(-1)
    z = beta * ((sums[:k] - ref_c) - (sums[k:] - ref_r))
    loss = -F.logsigmoid(z).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


t = bench(step, args["minTime"], args["maxTime"])
impl = f"torch {torch.__version__.split('+')[0]} ({threads} threads)"
print(json.dumps([{"name": args["name"], "impl": impl, "seconds": t, "gflops": args["flops"] / t / 1e9,
                   "note": f"{args['tokens'] / t:.0f} pair tok/s, {k / t:.1f} pairs/s; full logits, autograd"}]))
