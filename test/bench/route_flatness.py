#!/usr/bin/env python3
"""The memory route's prefill rate across prompt lengths, and full attention beside it: ours
only (ei-bench), every length and mode run alternately per repetition so a noisy shared
machine slows them alike. Prints mean ± sd tokens/s, each rate over the first length's
(the route's cost should be flat in length), and route / full attention per length.

    test/bench/route_flatness.py --model qwen-q8_0.gguf --scenario qa --lengths 1024,4096,16384 --full 4096

At the first length the prompt usually fits S + W, where the route is plain full attention.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_llama_cpp import ROOT, ours_once, stats  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ei-bench", default=os.path.join(ROOT, "target", "native", "cpp", "tools", "ei-bench"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--scenario", default="qa", help="qa, summarize or chat")
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--full", default="", help="lengths to run with plain full attention too, e.g. 4096")
    a = ap.parse_args()

    lengths = [int(n) for n in a.lengths.split(",")]
    full = [int(n) for n in a.full.split(",") if n]
    runs = [(n, a.scenario) for n in lengths] + [(n, "full") for n in full]
    rates = {r: [] for r in runs}
    for _ in range(a.reps):
        for n, mode in runs:
            rates[(n, mode)].append(ours_once(a.ei_bench, a.model, a.threads, ("pp", n, mode)))
    base = stats(rates[(lengths[0], a.scenario)])[0]
    print(f"{os.path.basename(a.model)}, {a.threads} threads, {a.reps} alternating repetitions, tokens/s\n")
    print(f"| prompt | {a.scenario} route | / rate at {lengths[0]} |" + (" full attention | route / full |" if a.full else ""))
    print("|---:|---:|---:|" + ("---:|---:|" if a.full else ""))
    for n in lengths:
        m, sd = stats(rates[(n, a.scenario)])
        row = f"| {n} | {m:.1f} ± {sd:.1f} | {m / base:.2f} |"
        if a.full:
            if (n, "full") in rates:
                fm, fsd = stats(rates[(n, "full")])
                row += f" {fm:.1f} ± {fsd:.1f} | {m / fm:.2f} |"
            else:
                row += " - | - |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
