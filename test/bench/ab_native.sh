#!/bin/bash
# Two builds of the native ei-bench, alternated on the same files and threads: the check that a
# change costs the CPU nothing (e.g. a commit before an interface change against main).
# Usage: test/bench/ab_native.sh A/ei-bench B/ei-bench MODEL.gguf... [-- ei-bench options]
# Prints one line per run and, per model, the mean of each test for A and B and B/A.
set -euo pipefail
a=$1 b=$2; shift 2
models=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do models+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
opts=("$@"); [ ${#opts[@]} -eq 0 ] && opts=(-p 512 -n 128 -t 2)
reps=${EI_AB_REPS:-3}
for m in "${models[@]}"; do
  for rep in $(seq 1 "$reps"); do
    for side in A B; do
      bin=$a; [ $side = B ] && bin=$b
      "$bin" -m "$m" -r 1 "${opts[@]}" 2>&1 | awk -v s=$side -v m="$(basename "$m")" '/^(pp|tg)[0-9]+ /{print m, s, $1, $3}'
    done
  done
done | tee /dev/stderr | awk '{k=$1" "$3; sum[k" "$2]+=$4; n[k" "$2]++; keys[k]=1}
  END {for (k in keys) {a=sum[k" A"]/n[k" A"]; b=sum[k" B"]/n[k" B"]; printf "%-28s A %9.2f  B %9.2f  B/A %.3f\n", k, a, b, b/a}}' | sort
