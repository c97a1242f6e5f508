#!/usr/bin/python3
"""PyTorch peer for bench/model.ts: the same decoder in plain torch (float32, autograd), timing a
training step, a no-grad scoring forward and KV-cache generation. Prints one JSON array of
BenchRow on its last line. Args: one JSON object {config, B, T, gen, minTime, flops}."""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

args = json.loads(sys.argv[1])
threads = int(__import__("os").environ.get("OMP_NUM_THREADS", "2"))
torch.set_num_threads(threads)
c = args["config"]
H, I, V, L = c["hiddenSize"], c["intermediateSize"], c["vocabSize"], c["numLayers"]
nh, nkv, hd, eps = c["numHeads"], c["numKvHeads"], c["headDim"], c["rmsNormEps"]
g = torch.Generator().manual_seed(0)


def w(*shape):
    return (torch.rand(shape, generator=g) * 0.1 - 0.05).requires_grad_(True)


P = {"emb": w(V, H), "norm": torch.ones(H, requires_grad=True)}
for l in range(L):
    P.update({f"{l}.in": torch.ones(H, requires_grad=True), f"{l}.q": w(nh * hd, H), f"{l}.k": w(nkv * hd, H),
              f"{l}.v": w(nkv * hd, H), f"{l}.o": w(H, nh * hd), f"{l}.qn": torch.ones(hd, requires_grad=True),
              f"{l}.kn": torch.ones(hd, requires_grad=True), f"{l}.post": torch.ones(H, requires_grad=True),
              f"{l}.gate": w(I, H), f"{l}.up": w(I, H), f"{l}.down": w(H, I)})
head = P["emb"] if c["tieWordEmbeddings"] else w(V, H)


def rms(x, wt):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * wt


def rope(x, pos):  # x (B, T, h, hd), pos (T,)
    inv = 1.0 / (c["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None].float() * inv[None, :]
    ang = torch.cat([ang, ang], -1)[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()


def forward(ids, cache=None, start=0):
    B, T = ids.shape
    x = P["emb"][ids]
    pos = torch.arange(start, start + T)
    for l in range(L):
        h = rms(x, P[f"{l}.in"])
        q = rms((h @ P[f"{l}.q"].T).view(B, T, nh, hd), P[f"{l}.qn"])
        k = rms((h @ P[f"{l}.k"].T).view(B, T, nkv, hd), P[f"{l}.kn"])
        v = (h @ P[f"{l}.v"].T).view(B, T, nkv, hd)
        q, k = rope(q, pos), rope(k, pos)
        if cache is not None:
            if l in cache:
                k = torch.cat([cache[l][0], k], 1)
                v = torch.cat([cache[l][1], v], 1)
            cache[l] = (k, v)
        rep = nh // nkv
        qt, kt, vt = q.transpose(1, 2), k.repeat_interleave(rep, 2).transpose(1, 2), v.repeat_interleave(rep, 2).transpose(1, 2)
        S = kt.shape[2]
        s = qt @ kt.transpose(-1, -2) / math.sqrt(hd)
        mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
        a = (torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ vt).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + a @ P[f"{l}.o"].T
        h = rms(x, P[f"{l}.post"])
        x = x + (F.silu(h @ P[f"{l}.gate"].T) * (h @ P[f"{l}.up"].T)) @ P[f"{l}.down"].T
    return rms(x, P["norm"])


def bench(fn, min_time):
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time and n >= 3:
            return el / n


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
