#!/usr/bin/env python3
"""Where GraphLA's answerable items go wrong: the arithmetic of single derivation steps.

Every derived price in a GraphLA trace is written "so X = <expression> = <value>". This checks each
such step a completion writes against its own expression (not against the ground truth: a step
may compute correctly from a wrongly copied value) and prints, per run of the 80-step table:
  - the policy's sampled rollouts (samples.jsonl.gz, temperature 1, the trainer's logged sample):
    the fraction of steps whose value is not their expression's, by RL step range;
  - the trainer's final greedy evaluation (eval_samples.jsonl.gz: its own 128 held-out items at
    depth 2, half answerable, not the table's): answerable items right / wrong, and how many of
    the wrong ones contain at least one miscomputed step.

Usage: python3 arith_errors.py [--by-form] [RUN_DIR ...]   (default: graphla/*-seed* next to this
file; the 160-step runs: ../160-steps/graphla/*-seed*)

--by-form: instead, the sampled steps of all the runs given, pooled, by the shape of their
expression (numbers as N: "N + N" is one operation, "N*N - N" two) and by the number of digits of
their largest operand.
"""
import glob
import gzip
import json
import os
import re
import sys

STEP = re.compile(r"so (\w+) = ([0-9+\-*/() ]+) = (-?\d+)")
RANGES = [(1, 5), (6, 20), (21, 40), (41, 60), (61, 80), (81, 120), (121, 160)]


def read(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def miscomputed(text):
    """(steps written, steps whose value is not their expression's)."""
    n = bad = 0
    for _, expr, value in STEP.findall(text):
        n += 1
        try:
            ok = abs(eval(expr, {"__builtins__": {}}) - int(value)) < 1e-9  # digits and + - * / ( ) only
        except (SyntaxError, ZeroDivisionError):
            ok = False
        bad += not ok
    return n, bad


def by_form(dirs):
    forms, digits = {}, {}
    for d in dirs:
        for s in read(os.path.join(d, "samples.jsonl.gz")):
            for _, expr, value in STEP.findall(s["completion"]):
                n, bad = miscomputed(f"so x = {expr} = {value}")
                for table, key in ((forms, re.sub(r"\d+", "N", expr.strip())), (digits, len(max(re.findall(r"\d+", expr), key=int)))):
                    c = table.setdefault(key, [0, 0])
                    c[0], c[1] = c[0] + n, c[1] + bad
    print("expression | sampled steps | miscomputed")
    for key, (n, bad) in sorted(forms.items(), key=lambda kv: -kv[1][0]):
        if n >= 100:
            print(f"{key} | {n} | {100 * bad / n:.0f}%")
    print("largest operand's digits | sampled steps | miscomputed")
    for key, (n, bad) in sorted(digits.items()):
        print(f"{key} | {n} | {100 * bad / n:.0f}%")


def main(dirs):
    print("run | sampled steps miscomputed, by RL steps " + " / ".join(f"{a}-{b}" for a, b in RANGES) + " | final greedy, answerable: right, wrong (with a miscomputed step)")
    for d in dirs:
        samples = read(os.path.join(d, "samples.jsonl.gz"))
        rates = []
        for a, b in RANGES:
            n = bad = 0
            for s in samples:
                if a <= s["step"] <= b:
                    k, m = miscomputed(s["completion"])
                    n, bad = n + k, bad + m
            rates.append(f"{100 * bad / n:.0f}% of {n}" if n else "-")
        right = wrong = wrong_arith = 0
        for e in read(os.path.join(d, "eval_samples.jsonl.gz")):
            if not e["answerable"]:
                continue
            if e["correct"]:
                right += 1
            else:
                wrong += 1
                wrong_arith += miscomputed(e["completion"])[1] > 0
        print(f"{os.path.basename(d.rstrip('/'))} | {' / '.join(rates)} | {right}, {wrong} ({wrong_arith})")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    args = [a for a in sys.argv[1:] if a != "--by-form"]
    dirs = args or sorted(glob.glob(os.path.join(here, "graphla", "*-seed*")))
    (by_form if "--by-form" in sys.argv[1:] else main)(dirs)
