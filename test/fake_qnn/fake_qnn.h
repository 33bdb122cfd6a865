// The fake QNN backend library's test hooks (fake_qnn.cpp), which a test looks up with dlsym
// in the same library the adapter opened.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define EI_FAKE_QNN_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

// Forgets the calls, graphs, inputs and injected failures of earlier tests (live contexts stay).
typedef void (*ei_fake_qnn_reset_fn)(void);
// What the HTP provider reports: its backend id and core API version (default 6, 2.20).
typedef void (*ei_fake_qnn_set_htp_provider_fn)(uint32_t backend_id, uint32_t core_major, uint32_t core_minor);
// The next call of that QNN function (its API name, e.g. "QnnGraph_finalize") fails with code.
typedef void (*ei_fake_qnn_fail_fn)(const char* call, uint64_t code);
// 1: QnnGraph_execute computes the graph with the emulator; 0 (the default, and after reset):
// it fills each output with its pattern.
typedef void (*ei_fake_qnn_set_compute_fn)(int on);
// Every call so far, one per line: "QnnGraph_addNode blk.0.attn_q".
typedef const char* (*ei_fake_qnn_calls_fn)(void);
// The ei::htp::QnnGraph rebuilt from the calls that built and finalized graph `name` (null if none).
typedef const void* (*ei_fake_qnn_graph_fn)(const char* name);
// The bytes the last execution of `graph` gave input `tensor` (null if none).
typedef const uint8_t* (*ei_fake_qnn_input_fn)(const char* graph, const char* tensor, size_t* size);

// The first byte the fake writes into an output named `name` (byte k is seed + k).
static inline uint8_t ei_fake_qnn_pattern_seed(const char* name) {
    uint32_t h = 2166136261u;
    for (const char* c = name; *c; ++c) h = (h ^ (uint8_t)*c) * 16777619u;
    return (uint8_t)(h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24));
}

#ifdef __cplusplus
}
#endif
