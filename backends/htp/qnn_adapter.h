// The QNN adapter (DESIGN §4, htp): hands lowered graphs (qnn_ir.h) to Qualcomm's QNN HTP
// backend through its C API (declared by the project in qnn_api.h), finalizes them, executes
// them, and keeps the compiled context on disk (qnn_context_cache.h).
//
// The backend library is opened at run time: $EI_QNN_HTP_LIB (a full path) when set, else
// $EI_QNN_LIB_DIR/libQnnHtp.so, else "libQnnHtp.so" through the loader's search path (on
// Android the app's native library folder or a vendor folder on LD_LIBRARY_PATH). Its
// QnnInterface_getProviders lists providers; the adapter takes the first whose backend id is
// HTP's and whose core API version is compatible: the same major as qnn_api.h's declarations
// (QNN only appends to a major's structs and function table) and a minor at least
// kCoreApiMinMinor (the oldest whose layouts the declarations follow).
//
// libQnnSystem.so is not opened: its one use here would be reading which tensor ids a
// context binary's graphs have, and the cache file records those itself.
//
// Every failing QNN call becomes an ei::Error naming the call, what it was for, the QNN
// error code and QNN's last error log line.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "htp/qnn_api.h"
#include "htp/qnn_ir.h"

namespace ei::htp {

// The backend library the adapter opens when not told one (see above).
std::string qnn_backend_library_path();
// The SoC the device reports: $EI_QNN_SOC, else /sys/devices/soc0/soc_id (Qualcomm SoCs'
// numeric id), else /sys/devices/soc0/machine, else "unknown".
std::string qnn_soc_id();
// A hash of everything QNN is given for a graph (tensors, encodings, data, nodes, params):
// a changed model or lowering never loads a stale context binary.
uint64_t qnn_graph_signature(const QnnGraph& g);

// One graph input or output bound to host memory for one execution.
struct QnnIoBuffer {
    uint32_t tensor = 0;   // IR tensor id (AppWrite or AppRead)
    void* data = nullptr;  // bytes() of the tensor's storage type
    size_t bytes = 0;
};

// How a QnnAdapter is opened (QnnAdapter::Options).
struct QnnAdapterOptions {
    std::string library;  // "" = qnn_backend_library_path()
    std::string soc;      // "" = qnn_soc_id()
    // Asks the HTP backend to share static weights between the graphs of a context
    // (its weight-sharing context option), so prefill, decode and fold keep one copy in
    // the context binary. A backend that refuses the option gets a context without it.
    bool share_weights = true;
};

class QnnAdapter {
public:
    using Options = QnnAdapterOptions;

    // Opens the library, picks the provider, creates log, backend, device and an empty
    // context. EI_ERR_UNSUPPORTED when the library is missing, exports no providers, has no
    // HTP provider or only incompatible ones; EI_ERR_INTERNAL when a QNN call fails.
    explicit QnnAdapter(const Options& opt = Options());
    ~QnnAdapter();
    QnnAdapter(const QnnAdapter&) = delete;
    QnnAdapter& operator=(const QnnAdapter&) = delete;

    const std::string& library() const;
    const std::string& provider_name() const;
    const std::string& build_id() const;
    qnn::ApiVersion api_version() const;
    // How the context the adapter built treats weights: "shared", "not shared (not asked)",
    // "not shared (the backend refused: ...)", or "as cached" after load_context.
    const std::string& weight_sharing() const;
    // The cache key of a context holding these graphs on this device and SoC.
    std::string cache_key(const std::vector<const QnnGraph*>& graphs) const;
    // The cache file for that key inside dir: dir/qnn-<16 hex digits of the key's hash>.bin.
    std::string cache_file(const std::string& dir, const std::vector<const QnnGraph*>& graphs) const;

    // Creates the graph in the context (one QNN tensor per IR tensor, one node per IR node,
    // param tensors as static tensors) and finalizes it. The graph is validated first; a name
    // already in the context is refused.
    void build(const QnnGraph& g);
    bool has_graph(const std::string& name) const;

    // Executes graph `name`: io must bind every AppWrite and AppRead tensor exactly once, each
    // with its tensor's byte size (EI_ERR_INVALID_ARGUMENT naming the tensor otherwise).
    void execute(const std::string& name, const std::vector<QnnIoBuffer>& io);

    // Writes the context (every graph built so far) with the graphs' io ids under the key
    // of those graphs to path.
    void save_context(const std::string& path, const std::vector<const QnnGraph*>& graphs);
    // Replaces the context by the one cached in path, which must hold exactly these graphs
    // under this device's key: EI_ERR_FORMAT when the file is corrupt, was written for
    // another key (device, SoC, provider build or model) or for other graphs.
    void load_context(const std::string& path, const std::vector<const QnnGraph*>& graphs);
    // Loads the context for these graphs from its cache file in dir when it is valid, else
    // builds every graph and writes the file. Returns true when it was loaded; *why (when
    // given) says why it was not ("no cache file", or the refusal's message).
    bool prepare(const std::vector<const QnnGraph*>& graphs, const std::string& dir, std::string* why = nullptr);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ei::htp
