"""PyTorch peers for bench/kernels.ts. Usage: kernels.py '<json args>'; prints one JSON array of
rows on its last stdout line. One op per process, so the peak-memory figure is clean:
VmHWM - VmRSS around one call after resetting the peak counter (/proc/self/clear_refs = 5)."""
import json
import sys
import time

import torch

torch.set_num_threads(2)
IMPL = f"torch {torch.__version__.split('a')[0]}"


def rss():
    with open("/proc/self/status") as f:
        s = f.read()
    get = lambda k: int(s.split(k + ":")[1].split()[0]) * 1024
    return get("VmRSS"), get("VmHWM")


def peak_bytes(fn):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before, _ = rss()
    fn()
    return max(0, rss()[1] - before)


def time_it(fn, min_time, max_time, warm=True):
    # at least min_time of calls, and 3 calls unless that would pass max_time (slow ops on a
    # loaded machine); the warm-up is skipped when the memory probe has just run fn
    if warm:
        fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_time and (n >= 3 or el >= max_time):
            return el / n


def sample_top_p(logits, p):
    # The usual sort-based nucleus sampler (HF / vLLM torch fallback).
    probs = torch.softmax(logits, dim=-1)
    sorted_p, idx = torch.sort(probs, dim=-1, descending=True)
    cum = torch.cumsum(sorted_p, dim=-1)
    sorted_p[(cum - sorted_p) > p] = 0.0
    choice = torch.multinomial(sorted_p, 1)
    return torch.gather(idx, -1, choice).squeeze(-1)


def case(a):
    g = torch.Generator().manual_seed(0)
    op = a["op"]
    if op == "sample":
        if a.get("zipf"):
            # Zipf-like rows in a random order, as bench/kernels.ts zipfLogits
            B, V = a["B"], a["V"]
            ranks = -1.3 * torch.log(torch.arange(1, V + 1, dtype=torch.float32))
            logits = torch.stack([ranks[torch.argsort(torch.randperm(V, generator=g))] for _ in range(B)])
            logits += 0.01 * (torch.rand(B, V, generator=g) - 0.5)
        else:
            logits = torch.randn(a["B"], a["V"], generator=g) * 3
        return "torch sort top-p", lambda: sample_top_p(logits, a["topP"])
    if op == "logprob":
        N, V = a["N"], a["V"]
        logits = torch.randn(N, V, generator=g) * 2
        tg = torch.randint(0, V, (N, 1), generator=g)

        def run():
            with torch.no_grad():
                logp = torch.log_softmax(logits, dim=-1)
                lp = logp.gather(-1, tg).squeeze(-1)
                ent = -(logp.exp() * logp).sum(-1)
            return lp, ent

        return "torch log_softmax+gather", run
    if op == "linear":
        N, H, V = a["N"], a["H"], a["V"]
        hidden = torch.randn(N, H, generator=g).requires_grad_()
        weight = (torch.randn(V, H, generator=g) / H ** 0.5).requires_grad_()
        tg = torch.randint(0, V, (N, 1), generator=g)
        da, db = torch.randn(N, generator=g), torch.randn(N, generator=g)

        def run():
            hidden.grad = None
            weight.grad = None
            logp = torch.log_softmax(hidden @ weight.t(), dim=-1)
            lp = logp.gather(-1, tg).squeeze(-1)
            ent = -(logp.exp() * logp).sum(-1)
            (da * lp + db * ent).sum().backward()

        def forward():
            with torch.no_grad():
                logp = torch.log_softmax(hidden @ weight.t(), dim=-1)
                return logp.gather(-1, tg).squeeze(-1), -(logp.exp() * logp).sum(-1)

        if not a.get("backward", True):
            return "torch matmul+log_softmax", forward
        return "torch matmul+log_softmax autograd", run
    if op == "linear_grpo":
        # bench/kernels.ts linearGrpoCase: ratio 1 (old = detached lp), k3 KL, token-mean
        N, H, V, B = a["N"], a["H"], a["V"], a["B"]
        hidden = torch.randn(N, H, generator=g).requires_grad_()
        weight = (torch.randn(V, H, generator=g) / H ** 0.5).requires_grad_()
        tg = torch.randint(0, V, (N, 1), generator=g)
        ref = torch.randn(N, generator=g) - 10
        adv = torch.randn(B, 1, generator=g).expand(B, N // B).reshape(N)

        def run():
            hidden.grad = None
            weight.grad = None
            logp = torch.log_softmax(hidden @ weight.t(), dim=-1)
            lp = logp.gather(-1, tg).squeeze(-1)
            r = torch.exp(lp - lp.detach())
            pg = torch.minimum(r * adv, torch.clamp(r, 0.8, 1.28) * adv)
            pg = torch.where(adv < 0, torch.maximum(pg, 3.0 * adv), pg)
            d = ref - lp
            kl = torch.exp(d) - d - 1
            (-pg + 0.04 * kl).mean().backward()

        return "torch matmul+log_softmax+GRPO autograd", run
    if op == "grpo":
        B, T = a["B"], a["T"]
        N = B * T
        old = torch.randn(B, T, generator=g) * 0.5 - 1.5
        lp = (old + 0.1 * torch.sin(torch.arange(N).float()).view(B, T)).requires_grad_()
        ref = old + 0.05
        roll = old + 0.02
        ent = (torch.randn(B, T, generator=g) * 0.3).abs().add(1).requires_grad_()
        adv = torch.randn(B, 1, generator=g)
        mask = (torch.rand(B, T, generator=g) > 0.1).float()

        def run():
            lp.grad = None
            ent.grad = None
            r = torch.exp(lp - old)
            pg = torch.minimum(r * adv, torch.clamp(r, 0.8, 1.28) * adv)
            pg = torch.where(adv < 0, torch.maximum(pg, 3.0 * adv), pg)
            w = torch.clamp(torch.exp(old - roll), max=2.0)
            d = ref - lp
            kl = torch.exp(d) - d - 1
            tok = -w * pg + 0.04 * kl - 0.001 * ent
            loss = ((tok * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
            loss.backward()

        return "torch eager autograd", run
    raise ValueError(f"unknown op {op}")


def main():
    a = json.loads(sys.argv[1])
    impl, fn = case(a)
    row = {"name": a["op"], "impl": f"{IMPL} ({impl})"}
    mem = a.get("mem", True)
    if mem:
        row["peakBytes"] = peak_bytes(fn)
    row["seconds"] = time_it(fn, a.get("minTime", 0.5), a.get("maxTime", 3), warm=not mem)
    print(json.dumps([row]))


if __name__ == "__main__":
    main()
