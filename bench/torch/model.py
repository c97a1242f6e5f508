#!/usr/bin/python3
"""PyTorch peer for bench/model.ts: the same decoder in plain torch (float32, autograd), timing a
training step, a no-grad scoring forward and KV-cache generation. Prints one JSON array of
BenchRow on its last line. Args: one JSON object {config, B, T, gen, minTime, flops}."""
import json
import sys

import torch
import torch.nn.functional as F

from decoder import Decoder, bench

args = json.loads(sys.argv[1])
threads = int(__import__("os").environ.get("OMP_NUM_THREADS", "2"))
torch.set_num_threads(threads)
c = args["config"]
H, V, L = c["hiddenSize"], c["vocabSize"], c["numLayers"]
g = torch.Generator().manual_seed(0)
model = Decoder(c, g)
P, head, forward = model.P, model.head, model.forward


B, T, min_time = args["B"], args["T"], args["minTime"]
ids = torch.randint(0, V, (B, T), generator=g)
tg = torch.randint(0, V, (B, T), generator=g)
impl = f"torch {torch.__version__} ({threads} threads)"
label = f"L={L} H={H} V={V}"
rows = []


def train():
    for p in P.values():
        p.grad = None
    hidden = forward(ids)
    F.cross_entropy((hidden @ head.T).view(B * T, V), tg.view(-1)).backward()


t = bench(train, min_time)
rows.append({"name": f"train step {label} B={B} T={T}", "impl": impl, "seconds": t, "gflops": args["flops"] / t / 1e9,
             "note": f"{B * T / t:.0f} tok/s"})


def score():
    with torch.no_grad():
        lp = torch.log_softmax(forward(ids) @ head.T, -1).gather(-1, tg[..., None])
    return lp


t = bench(score, min_time)
rows.append({"name": f"score (noGrad fwd + logprob) {label} B={B} T={T}", "impl": impl, "seconds": t,
             "gflops": args["flops"] / 3 / t / 1e9, "note": f"{B * T / t:.0f} tok/s"})

gen = args["gen"]
prompts = torch.randint(0, V, (gen["B"], gen["prompt"]), generator=g)


def generate():
    with torch.no_grad():
        cache = {}
        h = forward(prompts, cache, 0)[:, -1]
        for s in range(gen["newTokens"]):
            tok = torch.multinomial(torch.softmax(h @ head.T, -1), 1)
            if s == gen["newTokens"] - 1:
                break
            h = forward(tok, cache, gen["prompt"] + s)[:, -1]


t = bench(generate, min_time)
rows.append({"name": f"generate {label} B={gen['B']} prompt={gen['prompt']} new={gen['newTokens']}", "impl": impl,
             "seconds": t, "note": f"{gen['B'] * gen['newTokens'] / t:.0f} new tok/s"})
print(json.dumps(rows))
