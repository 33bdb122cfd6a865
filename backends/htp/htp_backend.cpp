#include "htp/htp_backend.h"

#include <cstdlib>
#include <map>
#include <vector>

#include "error.h"
#include "file_io.h"

namespace ei::htp {

namespace {

std::string version_string(const qnn::Version& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

// The QNN executor: the host's io buffers are this executor's own host memory, bound to
// the graphs' io tensors as QnnIoBuffers at every execution.
class QnnExecutor final : public GraphExecutor {
public:
    QnnExecutor(const QnnAdapterOptions& opt, std::string dir) : adapter_(opt), dir_(std::move(dir)) {}

    const char* name() const override { return "htp"; }

    void prepare(const std::vector<const QnnGraph*>& graphs) override {
        if (dir_.empty()) {
            for (const QnnGraph* g : graphs) adapter_.build(*g);
        } else {
            if (!make_dirs(dir_)) fail(EI_ERR_IO, "htp: cannot create the QNN context cache folder " + dir_);
            adapter_.prepare(graphs, dir_);
        }
        for (const QnnGraph* g : graphs) {
            std::map<uint32_t, std::vector<uint8_t>>& bufs = buffers_[g->name];
            std::vector<QnnIoBuffer>& io = io_[g->name];
            for (const Tensor& t : g->tensors) {
                if (t.kind != TensorKind::AppWrite && t.kind != TensorKind::AppRead) continue;
                std::vector<uint8_t>& b = bufs[t.id];
                b.assign(size_t(t.bytes()), 0);
                io.push_back(QnnIoBuffer{t.id, b.data(), b.size()});
            }
        }
    }

    uint8_t* io_buffer(const std::string& graph, uint32_t tensor) override {
        auto g = buffers_.find(graph);
        if (g == buffers_.end()) return nullptr;
        auto t = g->second.find(tensor);
        return t == g->second.end() ? nullptr : t->second.data();
    }

    void execute(const std::string& graph, NodeObserver* observer) override {
        if (observer) fail(EI_ERR_UNSUPPORTED, "htp: QNN runs whole graphs; node observers need the htp-emulator device");
        auto it = io_.find(graph);
        if (it == io_.end()) fail(EI_ERR_INTERNAL, "htp: graph '" + graph + "' was not prepared");
        adapter_.execute(graph, it->second);
    }

private:
    QnnAdapter adapter_;
    std::string dir_;
    std::map<std::string, std::map<uint32_t, std::vector<uint8_t>>> buffers_;
    std::map<std::string, std::vector<QnnIoBuffer>> io_;
};

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

}  // namespace

HtpProbe probe_htp_library(const std::string& library) {
    HtpProbe p;
    QnnAdapterOptions opt;
    opt.library = library;
    try {
        const QnnAdapter a(opt);
        p.present = true;
        p.library = a.library();
        p.provider = a.provider_name();
        p.build_id = a.build_id();
        p.api_version = "core " + version_string(a.api_version().core) + ", backend " + version_string(a.api_version().backend);
        p.soc = qnn_soc_id();
    } catch (const Error& e) {
        p.why = std::string("htp: ") + e.what();
    }
    return p;
}

const HtpProbe& probe_htp() {
    static const HtpProbe p = probe_htp_library();
    return p;
}

std::string qnn_cache_dir(const Scenario& sc) {
    std::string d = sc.cache_dir;
    if (d.empty()) d = env("EI_QNN_CACHE_DIR");
    if (d.empty()) {
        if (const std::string x = env("XDG_CACHE_HOME"); !x.empty()) {
            d = x + "/edgeinfinite/qnn";
        } else if (const std::string h = env("HOME"); !h.empty()) {
            d = h + "/.cache/edgeinfinite/qnn";
        }
    }
    return d == "off" ? std::string() : d;
}

std::unique_ptr<GraphExecutor> make_qnn_executor(const QnnAdapterOptions& options, const std::string& cache_dir) {
    return std::make_unique<QnnExecutor>(options, cache_dir);
}

std::unique_ptr<Backend> make_htp_backend(const Scenario& scenario, const std::string& library) {
    QnnAdapterOptions opt;
    opt.library = library;
    return make_lowered_backend(scenario, make_qnn_executor(opt, qnn_cache_dir(scenario)));
}

}  // namespace ei::htp
