"""PyTorch peer for bench/attention.ts: explicit causal GQA softmax attention, autograd backward.

Usage: attention.py '{"shapes": [{"B":8,"T":256,"nh":8,"nkv":2,"hd":64}], "minTime": 0.5}'
Prints one JSON array of BenchRow on its last stdout line (see bench/harness.ts).
"""
import json
import math
import sys
import time

import torch


def attention(q, k, v, nh, nkv):
    # q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd)
    B, T, _, hd = q.shape
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, heads, T, hd)
    if nh != nkv:
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
    return (p @ v).transpose(1, 2)


def time_it(fn, min_time, max_time):
    # at least min_time of calls, and 3 calls unless that would pass max_time
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_time and (n >= 3 or el >= max_time):
            return el / n


def main():
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    torch.set_num_threads(int(args.get("threads", 2)))
    shapes = args.get("shapes", [{"B": 8, "T": 256, "nh": 8, "nkv": 2, "hd": 64}])
    min_time = float(args.get("minTime", 0.5))
    max_time = float(args.get("maxTime", 3))
    impl = f"torch {torch.__version__.split('+')[0]}"
    rows = []
    torch.manual_seed(0)
    for sh in shapes:
        B, T, nh, nkv, hd = (sh[x] for x in ("B", "T", "nh", "nkv", "hd"))
        name = f"B={B} T={T} nh={nh} nkv={nkv} hd={hd}"
        flops = 4 * B * nh * T * T * hd / 2
        q = torch.randn(B, T, nh, hd, requires_grad=True)
        k = torch.randn(B, T, nkv, hd, requires_grad=True)
        v = torch.randn(B, T, nkv, hd, requires_grad=True)
        with torch.no_grad():
            t = time_it(lambda: attention(q, k, v, nh, nkv), min_time, max_time)
        rows.append({"name": f"attention fwd {name}", "impl": impl, "seconds": t, "gflops": flops / t / 1e9})
        out = attention(q, k, v, nh, nkv)
        dout = torch.randn_like(out)

        def bwd():
            q.grad = k.grad = v.grad = None
            out.backward(dout, retain_graph=True)

        t = time_it(bwd, min_time, max_time)
        rows.append({"name": f"attention bwd {name}", "impl": impl, "seconds": t, "gflops": 2.5 * flops / t / 1e9})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
