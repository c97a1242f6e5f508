# PyTorch peer of bench/matmul.ts: torch.matmul GFLOP/s on the same shapes.
# Usage: python3 bench/torch/matmul.py '{"shapes": [[M, N, K, transB], ...], "threads": 2, "minTime": 0.5}'
# Prints one JSON array of BenchRow on its last stdout line.
import json
import sys
import time

import torch


def time_it(fn, min_time):
    fn()  # warm-up (allocator, thread pool)
    reps, total = 0, 0.0
    while total < min_time or reps < 3:
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
        reps += 1
    return total / reps


def main():
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    torch.set_num_threads(int(args.get("threads", 2)))
    min_time = float(args.get("minTime", 0.5))
    rows = []
    for M, N, K, trans_b in args.get("shapes", [[256, 256, 256, False]]):
        g = torch.Generator().manual_seed(0)
        a = torch.rand(M, K, generator=g) - 0.5
        # trans_b: b is stored (N, K), as nn.Linear weights, and used transposed
        b = (torch.rand(N, K, generator=g) - 0.5) if trans_b else (torch.rand(K, N, generator=g) - 0.5)
        out = torch.empty(M, N)
        bt = b.t() if trans_b else b
        sec = time_it(lambda: torch.matmul(a, bt, out=out), min_time)
        name = f"matmul {M}x{N}x{K}" + (" b^T" if trans_b else "")
        rows.append(dict(name=name, impl=f"torch {torch.__version__.split('+')[0]}", seconds=sec,
                         gflops=2.0 * M * N * K / sec / 1e9))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
