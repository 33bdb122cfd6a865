// ei npu-prepare: chooses a model's NPU quantization once and keeps it in a folder, so that
// `--cache-dir DIR --device htp-emulator` (and QNN on a phone) runs the quantized graphs.
//  1. calibration: the float lowered graphs run in a real htp-emulator session over the
//     calibration tokens, a node observer recording every tensor's range (prefill with every
//     row's logits, prefill with the last row's, decode steps, and the folds the scenario
//     makes: one encoding per tensor name for all of them) and keeping the graph inputs of
//     the last few one-row prefill executions as samples;
//  2. the per-layer choice (16a4w): the prefill graph's logits SQNR with one layer in int4,
//     replayed on those samples (prepare_quantized); the most sensitive share stays int8;
//  3. DIR/htp-<fingerprint>.params (npu_params.h), DIR/report.txt (QuantReport: encodings,
//     SQNR against float, bytes; per-layer sensitivity; totals) and DIR/{prefill,decode,
//     fold}.txt, the quantized graphs as the device builds them from that file
//     (device_graphs.h); where the QNN HTP library loads (qnn_adapter.h), also the QNN
//     context binary of those graphs, else the report says why there is none.
#pragma once
#include <cstdint>
#include <string>

#include "plan.h"

namespace ei::htp {

struct NpuPrepareOptions {
    int32_t weight_bits = 8;    // 8: 16a8w; 4: 16a4w (per-layer choice)
    int32_t block = 32;         // int4 blocks along the input dimension: 32 or 64
    double keep_8bit = 0.25;    // 16a4w: the most sensitive share of the int4 candidates kept int8
    int32_t samples = 4;        // one-row prefill executions replayed for the choice and the report
    int32_t sensitivity_samples = 1;  // of those, per sensitivity run (each candidate costs one run each)
    int32_t decode_steps = 8;   // decode steps at the end of the calibration text (fewer if it is short)
};

// Throws EI_ERR_INVALID_ARGUMENT for bad options or a calibration text too short to run
// every graph the scenario uses (a memory scenario whose text never folds, for one).
// Returns the report's text (also written to DIR/report.txt).
std::string npu_prepare(const Plan& plan, const int32_t* tokens, int64_t n_tokens, const std::string& dir,
                        const NpuPrepareOptions& opt);

}  // namespace ei::htp
