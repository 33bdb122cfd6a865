#!/bin/bash
# The figures of the README section "Fitting the memory gates": fit on the first 16 windows
# of dev.txt, score windows 40-59 (never seen by the fit). Writes target/gates/.
set -e
cd "$(dirname "$0")/../.."
E=../shared/testdata/eval/evalmodel-f32.gguf
D=../shared/testdata/eval/dev.txt
R="--sink 32 --window 256 -L 64"
O=target/gates; mkdir -p $O
./ei fit-gates -m $E -f $D $R --windows 16 -o $O/scalar.gguf > $O/fit-scalar.txt
./ei fit-gates -m $E -f $D $R --windows 16 --gate adaptive -o $O/adaptive.gguf > $O/fit-adaptive.txt
./ei fit-gates -m $E -f $D $R --windows 16 --rule delta -o $O/scalar-delta.gguf > $O/fit-scalar-delta.txt
./ei fit-gates -m $E -f $D $R --windows 16 --memory-keys rope -o $O/scalar-rope.gguf > $O/fit-scalar-rope.txt
./ei fit-gates -m $E -f $D --scenario qa --sink 32 --window 256 --windows 16 -o $O/scalar-qa.gguf > $O/fit-scalar-qa.txt
./ei fit-gates -m $E -f $D --scenario qa --sink 32 --window 256 --windows 16 --gate adaptive -o $O/adaptive-qa.gguf > $O/fit-adaptive-qa.txt
./ei fit-gates -m $E -f $D $R --windows 16 --gate adaptive --ridge 0.01 -o $O/adaptive-r0.01.gguf > $O/fit-adaptive-r0.01.txt
./ei fit-gates -m $E -f $D $R --windows 16 --gate adaptive --ridge 1 -o $O/adaptive-r1.gguf > $O/fit-adaptive-r1.txt
./ei fit-gates -m $E -f $D $R --windows 16 --gate adaptive --ridge 0 -o $O/adaptive-r0.gguf > $O/fit-adaptive-r0.txt
./ei gate-init -m $E --value -1.5 $R -o $O/const.gguf > /dev/null
J="${JAVA_HOME:?set JAVA_HOME to a JDK 22 or newer}/bin/java --enable-native-access=ALL-UNNAMED -cp target/edgeinfinite-0.1.0.jar examples/gate-quality/GateQuality.java $D 40 20"
$J 32 256 64 full=$E,full g0=$E constant-0.18=$O/const.gguf scalar=$O/scalar.gguf adaptive=$O/adaptive.gguf \
   g0-delta=$E,rule=delta scalar-delta=$O/scalar-delta.gguf g0-rope=$E,keys=rope scalar-rope=$O/scalar-rope.gguf \
   adaptive-ridge0.01=$O/adaptive-r0.01.gguf adaptive-ridge1=$O/adaptive-r1.gguf adaptive-ridge0=$O/adaptive-r0.gguf
$J 32 256 128 g0-qa=$E scalar-qa=$O/scalar-qa.gguf adaptive-qa=$O/adaptive-qa.gguf
