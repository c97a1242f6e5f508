"""The decoder of bench/model.ts and bench/preference.ts in plain torch (float32, autograd): a
Qwen3-style stack (RMSNorm, q/k norms, RoPE, GQA causal attention with an optional KV cache,
SwiGLU, tied or separate LM head), random weights. Shared by the PyTorch peers model.py and
preference.py."""
import math
import time

import torch
import torch.nn.functional as F


class Decoder:
    def __init__(self, c, g):
        self.c = c
        H, I, V, L = c["hiddenSize"], c["intermediateSize"], c["vocabSize"], c["numLayers"]
        nh, nkv, hd = c["numHeads"], c["numKvHeads"], c["headDim"]

        def w(*shape):
            return (torch.rand(shape, generator=g) * 0.1 - 0.05).requires_grad_(True)

        P = {"emb": w(V, H), "norm": torch.ones(H, requires_grad=True)}
        for l in range(L):
            P.update({f"{l}.in": torch.ones(H, requires_grad=True), f"{l}.q": w(nh * hd, H), f"{l}.k": w(nkv * hd, H),
                      f"{l}.v": w(nkv * hd, H), f"{l}.o": w(H, nh * hd), f"{l}.qn": torch.ones(hd, requires_grad=True),
                      f"{l}.kn": torch.ones(hd, requires_grad=True), f"{l}.post": torch.ones(H, requires_grad=True),
                      f"{l}.gate": w(I, H), f"{l}.up": w(I, H), f"{l}.down": w(H, I)})
        self.P = P
        self.head = P["emb"] if c["tieWordEmbeddings"] else w(V, H)

    def parameters(self):
        return list(self.P.values()) + ([] if self.c["tieWordEmbeddings"] else [self.head])

    def rms(self, x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rmsNormEps"]) * wt

    def rope(self, x, pos):  # x (B, T, h, hd), pos (T,)
        hd = self.c["headDim"]
        inv = 1.0 / (self.c["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = pos[:, None].float() * inv[None, :]
        ang = torch.cat([ang, ang], -1)[None, :, None, :]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()

    def forward(self, ids, cache=None, start=0):
        """ids (B, T) -> final hidden states (B, T, H), after the last RMSNorm."""
        c, P = self.c, self.P
        nh, nkv, hd = c["numHeads"], c["numKvHeads"], c["headDim"]
        B, T = ids.shape
        x = P["emb"][ids]
        pos = torch.arange(start, start + T)
        for l in range(c["numLayers"]):
            h = self.rms(x, P[f"{l}.in"])
            q = self.rms((h @ P[f"{l}.q"].T).view(B, T, nh, hd), P[f"{l}.qn"])
            k = self.rms((h @ P[f"{l}.k"].T).view(B, T, nkv, hd), P[f"{l}.kn"])
            v = (h @ P[f"{l}.v"].T).view(B, T, nkv, hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
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
            h = self.rms(x, P[f"{l}.post"])
            x = x + (F.silu(h @ P[f"{l}.gate"].T) * (h @ P[f"{l}.up"].T)) @ P[f"{l}.down"].T
        return self.rms(x, P["norm"])


def bench(fn, min_time, max_time=float("inf")):
    """Mean seconds per call: one warm-up call, then calls until min_time and at least 3 calls,
    or until max_time."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if (el >= min_time and n >= 3) or (el >= max_time and n >= 1):
            return el / n
