#!/usr/bin/env bash
# Issue 15's quality figures of the quantized NPU path: for each model, each weight scheme
# (16a8w, 16a4w) and each route (full attention: one window holds the whole chunk; memory:
# a small sink/window/segment so the chunk folds), `ei npu-prepare` calibrates on one part of
# the text, and `ei perplexity --kl-divergence` compares the htp-emulator's quantized run
# against the CPU's F32 run of the same scenario on another, disjoint part: logits SQNR,
# same top token, PPL(Q)/PPL(base); the prepared weight bytes come from report.txt.
# Usage: test/bench/npu_quality.sh [OUT_DIR]
#   MODELS: "eval" (default), "qwen" or "eval qwen" (a synthetic Qwen2.5-0.5B shape:
#   random weights, big; measured on a shorter text since the emulator is single-threaded).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
W="${1:-target/npu-quality}"
D=../shared/testdata/eval/dev.txt
mkdir -p "$W"
# Disjoint parts of dev.txt: the calibration text from its start, the held-out text from
# the first newline past its middle.
python3 - "$D" "$W" <<'PY'
import sys
t = open(sys.argv[1], encoding='utf-8').read()
mid = t.index('\n', len(t) // 2) + 1
open(sys.argv[2] + '/calib.txt', 'w', encoding='utf-8').write(t[:mid])
open(sys.argv[2] + '/held.txt', 'w', encoding='utf-8').write(t[mid:])
PY

row() {  # model-name model route-name "scenario options" ctx chunks calib-tokens "npu-prepare options"
  local name=$1 m=$2 route=$3 sc=$4 ctx=$5 chunks=$6 calib=$7 prep=${8:-}
  local base=$W/$name-$route.kl
  ./ei perplexity -m "$m" -f $W/held.txt --ctx "$ctx" --chunks "$chunks" $sc --kl-divergence-base "$base" -t 2 \
    2>/dev/null > $W/$name-$route-base.log
  for scheme in 16a8w 16a4w; do
    local dir=$W/$name-$route-$scheme
    ./ei npu-prepare -m "$m" -f $W/calib.txt -o "$dir" --weights $scheme --max-tokens "$calib" $sc $prep \
      > $W/$name-$route-$scheme-prepare.log 2>&1
    ./ei perplexity -m "$m" -f $W/held.txt --ctx "$ctx" --chunks "$chunks" $sc --device htp-emulator --cache-dir "$dir" \
      --kl-divergence "$base" 2>/dev/null > $W/$name-$route-$scheme.log
    awk -v n="$name" -v r="$route" -v s="$scheme" -v rep="$dir/report.txt" -F' *: *' '
      /^PPL\(Q\)\/PPL\(base\)/ {p=$2} /^same top token/ {t=$2} /^logits SQNR/ {q=$2}
      END {
        while ((getline line < rep) > 0) if (line ~ /^prefill graph:/) {
          split(line, f, /weights | bytes \(float |, /); w = f[2]; fl = f[3] + 0 }
        printf "| %s | %s | %s | %s | %s | %s | %.2f MB (F32 %.2f MB, %.1f%%) |\n", n, r, s, q, t, p, w / 1e6, fl / 1e6, 100 * w / fl }' \
      $W/$name-$route-$scheme.log
  done
}

echo "| model | route | scheme | logits SQNR | same top token | PPL(Q)/PPL(F32) | prepared weights |"
echo "|---|---|---|---|---|---|---|"
for which in ${MODELS:-eval}; do
  case $which in
    eval)
      M=../shared/testdata/eval/evalmodel-f32.gguf
      row eval "$M" full "--ctx 128" 128 16 512
      row eval "$M" memory "--ctx 128 --memory on --sink 8 --window 32 -L 16" 128 16 512
      ;;
    qwen)
      Q=$W/qwen2.5-0.5b-f32.gguf
      [ -f $Q ] || ./ei synth --shape qwen2.5-0.5b --type f32 -o $Q > /dev/null
      # --keep-8bit 0: no per-layer sensitivity runs (168 candidates, each an emulator run of
      # the 0.5B prefill graph, are hours here): every candidate int4, the LM head int8.
      row qwen "$Q" full "--ctx 64 -L 16" 64 1 64 "--keep-8bit 0"
      row qwen "$Q" memory "--ctx 64 --memory on --sink 4 --window 16 -L 8" 64 1 64 "--keep-8bit 0"
      ;;
  esac
done
