// The `htp` device (DESIGN §4, htp): the Hexagon NPU through QNN. Its backend is the lowered
// backend (lowered_backend.h) with a QNN executor: the graphs are built into one QNN context
// through the adapter (qnn_adapter.h), or that context is loaded from its cache file, and
// each execution binds the host side's io buffers as QnnIoBuffers.
//
// The device is present only where the QNN library opens and offers an HTP provider (the
// adapter's constructor succeeds); the probe runs once per process and remembers why not.
#pragma once
#include <memory>
#include <string>

#include "backend.h"
#include "htp/lowered_backend.h"
#include "htp/qnn_adapter.h"
#include "scenario.h"

namespace ei::htp {

// What probing the QNN library found.
struct HtpProbe {
    bool present = false;
    std::string why;  // when absent: "htp: ..." naming the library and the reason
    std::string library, provider, build_id, api_version, soc;  // when present
};

// Opens the adapter on that library ("" = qnn_backend_library_path()) and describes it; an
// absent or unusable library gives present = false and why. Not cached (tests).
HtpProbe probe_htp_library(const std::string& library = "");
// probe_htp_library() once per process (the registry's; later calls return the first answer).
const HtpProbe& probe_htp();

// Where the htp backend keeps its QNN context binaries: the scenario's cache_dir, else
// $EI_QNN_CACHE_DIR, else $XDG_CACHE_HOME/edgeinfinite/qnn, else ~/.cache/edgeinfinite/qnn;
// "" (no caching: the graphs are built every session) when that is "off" or nothing is set.
std::string qnn_cache_dir(const Scenario& scenario);

// Executes with QNN: prepare() builds the graphs into the adapter's context, or loads the
// context from its cache file in cache_dir ("" = build, never cache).
std::unique_ptr<GraphExecutor> make_qnn_executor(const QnnAdapterOptions& options, const std::string& cache_dir);

// The htp device's backend: a QnnAdapter on library ("" = qnn_backend_library_path(); the
// registry passes the one its probe opened), the context cached in qnn_cache_dir(scenario).
std::unique_ptr<Backend> make_htp_backend(const Scenario& scenario, const std::string& library = "");

}  // namespace ei::htp
