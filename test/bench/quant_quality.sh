#!/usr/bin/env bash
# The side-by-side quantization table of the README ("Quantizing"): the evaluation model
# quantized by `ei quantize` and by llama.cpp's `llama-quantize` (Q8_0, Q4_0, Q4_K_M, and
# Q4_K_M with an importance matrix), every file measured by the same tool
# (`ei perplexity --kl-divergence`) on held-out text. The first half of dev.txt (to the first
# newline past its middle) calibrates the importance matrix; the second half measures.
# Usage: test/bench/quant_quality.sh [OUT_DIR]   (LLAMA_BIN: llama.cpp's bin folder)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
L="${LLAMA_BIN:-$HOME/.cache/llama.cpp-ref/build/bin}"
M=../shared/testdata/eval/evalmodel-f32.gguf
D=../shared/testdata/eval/dev.txt
W="${1:-target/quant-quality}"
mkdir -p "$W"
[ -x "$L/llama-quantize" ] || { echo "llama-quantize not found in $L (build it with ../shared/tools/build-llama-cpp.sh)" >&2; exit 1; }
python3 - "$D" "$W" <<'PY'
import sys
t = open(sys.argv[1], encoding='utf-8').read()
mid = t.index('\n', len(t) // 2) + 1
open(sys.argv[2] + '/calib.txt', 'w', encoding='utf-8').write(t[:mid])
open(sys.argv[2] + '/held.txt', 'w', encoding='utf-8').write(t[mid:])
PY
./ei imatrix -m $M -f $W/calib.txt -o $W/imatrix.gguf --ctx 512 -t 2 2>/dev/null | tail -1
for T in q8_0 q4_0 q4_k_m; do
  ./ei quantize $M $W/ei-$T.gguf $T --threads 2 > $W/ei-$T.log 2>&1
  "$L/llama-quantize" $M $W/ll-$T.gguf "$(echo $T | tr a-z A-Z)" 2 > $W/ll-$T.log 2>&1
done
./ei quantize $M $W/ei-q4_k_m-im.gguf q4_k_m --imatrix $W/imatrix.gguf --threads 2 > $W/ei-q4_k_m-im.log 2>&1
"$L/llama-quantize" --imatrix $W/imatrix.gguf $M $W/ll-q4_k_m-im.gguf Q4_K_M 2 > $W/ll-q4_k_m-im.log 2>&1
./ei perplexity -m $M -f $W/held.txt --ctx 1024 --kl-divergence-base $W/base.kl -t 2 2>/dev/null | grep '^perplexity'
echo "| file | PPL(Q)/PPL(base) | mean KLD | KLD 99% | same top |"
echo "|---|---|---|---|---|"
for f in ei-q8_0 ll-q8_0 ei-q4_0 ll-q4_0 ei-q4_k_m ll-q4_k_m ei-q4_k_m-im ll-q4_k_m-im; do
  ./ei perplexity -m $W/$f.gguf -f $W/held.txt --ctx 1024 --kl-divergence $W/base.kl -t 2 2>/dev/null | awk -v f=$f -F' *: *' '
    /^PPL\(Q\)\/PPL\(base\)/ {r=$2} /^KLD mean/ {k=$2} /^KLD  99.0%/ {k99=$2} /^same top token/ {s=$2}
    END {printf "| %s | %s | %s | %s | %s |\n", f, r, k, k99, s}'
done
