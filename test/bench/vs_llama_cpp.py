#!/usr/bin/env python3
"""Side-by-side speed of llama.cpp (llama-bench) and this runtime (ei-bench) on the same
GGUF files and threads, run alternately (one repetition of each, then the next), so a
noisy shared machine slows both alike. Prints mean ± sd (tokens/s) per engine and the ratio
ours / llama.cpp, as a Markdown table.

    test/bench/vs_llama_cpp.py --llama-bin ~/.cache/llama.cpp-ref/build/bin \\
        --model q8_0=/path/qwen-q8_0.gguf --model q4_0=/path/qwen-q4_0.gguf --threads 1,2

Tests (--tests): pp512, tg128 (llama-bench's defaults for both engines), and long-prompt
ones: llama.cpp with flash attention against ppN-qa (ours with the qa preset: the memory
route once N > S + W; -summarize and -chat likewise) and ppN-full (ours, plain full attention
over N tokens). test/bench/route_flatness.py compares our own runs across lengths.
Build llama.cpp with ../shared/tools/build-llama-cpp.sh and ours with `./ei build` (or cmake).
"""
import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def llama_once(bin_dir, model, threads, test):
    """One llama-bench repetition (it warms up itself); returns tokens/s."""
    kind, n, fa = test
    args = [os.path.join(bin_dir, "llama-bench"), "-m", model, "-t", str(threads), "-r", "1", "-o", "csv"]
    args += ["-p", str(n), "-n", "0"] if kind == "pp" else ["-p", "0", "-n", str(n)]
    if fa:
        args += ["-fa", "1"]
    if kind == "pp" and n > 2048:
        args += ["--no-warmup"]  # a warm-up of a long prompt would double the run
    rows = list(csv.DictReader(io.StringIO(run(args))))
    return float(rows[-1]["avg_ts"])


def ours_once(ei_bench, model, threads, test):
    kind, n, scenario = test
    args = [ei_bench, "-m", model, "-t", str(threads), "-r", "1"]
    args += ["-p", str(n), "-n", "0"] if kind == "pp" else ["-p", "0", "-n", str(n)]
    if scenario == "full":
        args += ["--ctx", str(n + 16)]
    elif scenario:
        args += ["--scenario", scenario]
    if kind == "pp" and n > 2048:
        args += ["-w", "0"]
    out = run(args)
    m = re.search(r"^(?:pp|tg)\d+\s+\d+\s+([0-9.]+)", out, re.M)
    if not m:
        sys.exit(f"cannot read ei-bench output:\n{out}")
    return float(m.group(1))


def stats(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bin", default=os.path.expanduser("~/.cache/llama.cpp-ref/build/bin"))
    ap.add_argument("--ei-bench", default=os.path.join(ROOT, "target", "native", "cpp", "tools", "ei-bench"))
    ap.add_argument("--model", action="append", required=True, help="LABEL=PATH (repeatable)")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tests", default="pp512,tg128", help="pp512, tg128, pp4096-full, pp16384-qa ...")
    a = ap.parse_args()

    print(f"llama.cpp: {a.llama_bin}; ours: {a.ei_bench}; {a.reps} alternating repetitions each\n")
    print("| model | threads | test | llama.cpp t/s | ours t/s | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for spec in a.model:
        label, path = spec.split("=", 1)
        for threads in [int(t) for t in a.threads.split(",")]:
            for name in a.tests.split(","):
                m = re.fullmatch(r"(pp|tg)(\d+)(?:-(qa|summarize|chat|full))?", name)
                if not m:
                    sys.exit(f"unknown test '{name}'")
                kind, n, ours_mode = m.group(1), int(m.group(2)), m.group(3)
                fa = ours_mode is not None  # long-prompt tests: llama.cpp with flash attention
                theirs, ours = [], []
                for _ in range(a.reps):
                    theirs.append(llama_once(a.llama_bin, path, threads, (kind, n, fa)))
                    ours.append(ours_once(a.ei_bench, path, threads, (kind, n, ours_mode)))
                (tm, ts), (om, osd) = stats(theirs), stats(ours)
                ref = f"{kind}{n}" + (" (fa)" if fa else "")
                print(f"| {label} | {threads} | {ref} vs {name} | {tm:.1f} ± {ts:.1f} | {om:.1f} ± {osd:.1f} | "
                      f"{om / tm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
