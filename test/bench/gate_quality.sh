#!/bin/bash
# The figures of the README sections "Fitting the memory gates" and "Evaluating long-context
# quality" (all but the --sinks table), from the project's own commands: `ei fit-gates` on the
# first 16 windows (1,024 tokens) of the evaluation model's held-out dev.txt, constant-gate
# copies from `ei gate-init`, then `ei eval perplexity` on text the fit never saw
# (--skip-windows 8 of the longest length, 2,048: the fit's 16,384 tokens) and `ei eval
# passkey`, every configuration of one route shape in one run (the qa variant, L 128, in a
# second run on the same text). Writes target/gates/: the fitted models, each fit's printout
# (fit-*.txt: per-layer errors, then "fit: SECONDS s, TOKENS calibration tokens ..."), the
# tables (ppl-*.txt, passkey.txt) and their JSON/SVG. Perplexities and fitted gates are
# deterministic; the fit's seconds depend on the machine and its load.
#   test/bench/gate_quality.sh [WINDOWS [REPEATS]]    (scored windows per length and repeat samples: 24, 32)
set -e
cd "$(dirname "$0")/../.."
E=../shared/testdata/eval/evalmodel-f32.gguf
D=../shared/testdata/eval/dev.txt
N=${1:-24}      # scored windows of each length
REP=${2:-32}    # repeat samples (128 tokens coming back 600 later)
R="--sink 32 --window 256 -L 64"
Q="--scenario qa --sink 32 --window 256"   # qa's L 128 with the same sink and window
FIT="--windows 16 -t 2"
O=target/gates; mkdir -p $O

./ei fit-gates -m $E -f $D $R $FIT -o $O/scalar.gguf > $O/fit-scalar.txt
./ei fit-gates -m $E -f $D $R $FIT --gate adaptive -o $O/adaptive.gguf > $O/fit-adaptive.txt
./ei fit-gates -m $E -f $D $R $FIT --rule delta -o $O/scalar-delta.gguf > $O/fit-scalar-delta.txt
./ei fit-gates -m $E -f $D $R $FIT --memory-keys rope -o $O/scalar-rope.gguf > $O/fit-scalar-rope.txt
./ei fit-gates -m $E -f $D $Q $FIT -o $O/scalar-qa.gguf > $O/fit-scalar-qa.txt
./ei fit-gates -m $E -f $D $Q $FIT --gate adaptive -o $O/adaptive-qa.gguf > $O/fit-adaptive-qa.txt
./ei gate-init -m $E --value -1.5 $R -o $O/const.gguf > /dev/null   # g = sigmoid(-1.5) = 0.18
./ei gate-init -m $E --value 0 $R -o $O/const0.5.gguf > /dev/null    # g = 0.5
for f in scalar adaptive scalar-delta scalar-rope scalar-qa adaptive-qa; do
  echo "$f: $(grep '^fit:' $O/fit-$f.txt)"
done | tee $O/fit-cost.txt

# Each fitted copy carries its rule and memory keys (edgeinfinite.* keys); full attention
# and g = 0 never read the memory, so one run serves the linear, delta and RoPE-key fits.
M="base=$E,const=$O/const.gguf,const0.5=$O/const0.5.gguf,scalar=$O/scalar.gguf,adaptive=$O/adaptive.gguf"
M="$M,scalar-delta=$O/scalar-delta.gguf,scalar-rope=$O/scalar-rope.gguf"
S="-f $D --windows $N --repeats $REP -t 2"
./ei eval perplexity --models $M $S --lengths 1024,2048 --skip-windows 8 $R --json $O/ppl.json --svg $O/ppl.svg | tee $O/ppl.txt
# qa (L 128): its g = 0 differs (other folds); full attention is the run above's. The same
# text: 16 windows of 1,024 left out.
./ei eval perplexity --models base=$E,scalar-qa=$O/scalar-qa.gguf,adaptive-qa=$O/adaptive-qa.gguf --configs g0,gated \
    $S --lengths 1024 --skip-windows 16 $Q --json $O/ppl-qa.json | tee $O/ppl-qa.txt
./ei eval passkey --models $M --lengths 512,1024 --depths 0,0.5,1 --trials 2 $R -t 2 \
    --json $O/passkey.json | tee $O/passkey.txt
# The qa preset itself (S 64, W 2048, L 128: S + W is twice the training context), constant
# gates only (a fit needs calibration windows longer than S + W = 2,112 tokens, which this
# model was never trained on): 8 windows of 4,096, 8 repeats (coming back 2,304 later).
./ei eval perplexity --models base=$E,const=$O/const.gguf,const0.5=$O/const0.5.gguf -f $D --skip-windows 4 \
    --lengths 4096 --windows 8 --repeats 8 --scenario qa -t 2 --json $O/ppl-qa-preset.json | tee $O/ppl-qa-preset.txt
