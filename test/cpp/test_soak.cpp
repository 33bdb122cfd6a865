// Soak tests through the C ABI (the layer both Java bindings call): a long run on the
// memory route whose RSS stays flat and whose logits and memory stay finite, and many
// sessions opened and closed on one model without RSS growth.
//
// EI_SOAK_TOKENS (default 65536) and EI_SOAK_SESSIONS (default 10000) size them; CI runs
// the token soak at 1M natively and shortens both under sanitizers and qemu.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "check.h"
#include "cpu/ops.h"
#include "edgeinfinite/edgeinfinite.h"
#include "model.h"

#if defined(__SANITIZE_ADDRESS__)
#define EI_SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EI_SOAK_ASAN 1
#endif
#endif
#ifndef EI_SOAK_ASAN
#define EI_SOAK_ASAN 0
#endif

namespace {

std::string tiny() { return check::testdata("models/tiny-llama-q8_0.gguf"); }

int64_t env_count(const char* name, int64_t def) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoll(v) : def;
}

// Current resident set (VmRSS), not the peak: growth after warm-up is what a leak shows.
// Read into a stack buffer: a heap buffer per sample would itself grow RSS under ASan,
// whose quarantine keeps freed blocks.
int64_t rss_kb() {
    char buf[8192];
    const int fd = ::open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t got = 0, n;
    while (got < ssize_t(sizeof(buf)) - 1 && (n = ::read(fd, buf + got, sizeof(buf) - 1 - size_t(got))) > 0) got += n;
    ::close(fd);
    buf[got > 0 ? got : 0] = '\0';
    const char* at = std::strstr(buf, "VmRSS:");
    return at ? std::atoll(at + 6) : -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Process CPU time (all threads): on a shared build machine it says more than wall time.
double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

bool ok(ei_status st, const char* what) {
    if (st == EI_OK) return true;
    std::fprintf(stderr, "%s failed: %s: %s\n", what, ei_status_name(st), ei_last_error());
    ++check::failures;
    return false;
}

bool all_finite(const float* x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) return false;
    }
    return true;
}

// The pool as Java allocates it: zeroed, aligned as the plan asks.
struct Pool {
    void* p = nullptr;
    uint64_t size = 0;
    explicit Pool(const ei_plan* plan) {
        const uint64_t align = std::max<uint64_t>(ei_plan_pool_alignment(plan), sizeof(void*));
        size = ei_plan_pool_size(plan);
        p = std::aligned_alloc(align, (size + align - 1) / align * align);  // size must be a multiple
        if (!p) throw std::runtime_error("pool allocation failed");
        std::memset(p, 0, size);
    }
    ~Pool() { std::free(p); }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
};

// ---------------------------------------------------------------- a gated copy of the model

// The tiny model has no memory gates, so g = 0 and the memory would never reach the logits.
// A copy with scalar gates w = 0 (g = 1/2) makes every query read M and z, so "logits stay
// finite" covers the memory retrieval after ~1M folded tokens. Only the header changes:
// the original key/values and tensor infos are copied byte for byte, the gate tensor infos
// appended after them, the data section copied unchanged (its offsets are relative to it)
// with the gate data behind it.
struct Bytes {
    std::vector<char> b;
    size_t at = 0;
    template <typename T>
    T get() {
        if (at + sizeof(T) > b.size()) throw std::runtime_error("gguf: truncated header");
        T v;
        std::memcpy(&v, b.data() + at, sizeof(T));
        at += sizeof(T);
        return v;
    }
    void skip(uint64_t n) {
        if (n > b.size() - at) throw std::runtime_error("gguf: truncated header");
        at += n;
    }
    void skip_value(uint32_t type) {
        static const uint8_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        if (type == 8) {
            skip(get<uint64_t>());
        } else if (type == 9) {
            const uint32_t et = get<uint32_t>();
            const uint64_t n = get<uint64_t>();
            for (uint64_t i = 0; i < n; ++i) skip_value(et);
        } else if (type < std::size(kSize)) {
            skip(kSize[type]);
        } else {
            throw std::runtime_error("gguf: bad value type");
        }
    }
};

void write_gated_copy(const std::string& in, const std::string& out, int32_t n_layer, int32_t n_head) {
    ei_gguf* g = nullptr;
    if (!ok(ei_gguf_open(in.c_str(), &g), "ei_gguf_open")) throw std::runtime_error("cannot open " + in);
    const uint64_t align = ei_gguf_alignment(g), data_offset = ei_gguf_data_offset(g);
    ei_gguf_close(g);

    Bytes f;
    std::ifstream is(in, std::ios::binary);
    f.b.assign(std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>());
    f.skip(8);  // magic, version
    const uint64_t n_tensors = f.get<uint64_t>(), n_kv = f.get<uint64_t>();
    for (uint64_t i = 0; i < n_kv; ++i) {
        f.skip(f.get<uint64_t>());
        f.skip_value(f.get<uint32_t>());
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
        f.skip(f.get<uint64_t>());
        f.skip(8 * uint64_t{f.get<uint32_t>()} + 4 + 8);  // dims, type, offset
    }
    const size_t infos_end = f.at;

    std::ofstream os(out, std::ios::binary);
    auto put = [&](auto v) { os.write(reinterpret_cast<const char*>(&v), sizeof(v)); };
    auto pad_to = [&](uint64_t pos) {
        while (uint64_t(os.tellp()) < pos) os.put('\0');
    };
    os.write(f.b.data(), 8);
    put(n_tensors + uint64_t(n_layer));
    put(n_kv);
    os.write(f.b.data() + 24, std::streamsize(infos_end - 24));
    const uint64_t data_size = f.b.size() - data_offset;
    const uint64_t gate_bytes = uint64_t(n_head) * sizeof(float);
    const uint64_t gate_stride = (gate_bytes + align - 1) / align * align;
    const uint64_t gates_at = (data_size + align - 1) / align * align;
    for (int32_t l = 0; l < n_layer; ++l) {
        const std::string name = "blk." + std::to_string(l) + ".ei_gate.weight";
        put(uint64_t(name.size()));
        os.write(name.data(), std::streamsize(name.size()));
        put(uint32_t{1});                            // n_dims
        put(uint64_t(n_head));                       // [n_head]: a scalar gate per head
        put(uint32_t{0});                            // f32
        put(gates_at + uint64_t(l) * gate_stride);  // offset in the data section
    }
    const uint64_t new_data = (uint64_t(os.tellp()) + align - 1) / align * align;
    pad_to(new_data);
    os.write(f.b.data() + data_offset, std::streamsize(data_size));
    for (int32_t l = 0; l < n_layer; ++l) {
        pad_to(new_data + gates_at + uint64_t(l) * gate_stride);
        for (int32_t h = 0; h < n_head; ++h) put(0.0f);  // g = sigmoid(0) = 1/2
    }
    if (!os) throw std::runtime_error("cannot write " + out);
}

// ---------------------------------------------------------------- a double shadow of z

// Each fold adds one sigma(k) row per folded token to z (and sigma(k)^T v to M) in f32;
// after ~1M tokens z is ~1e6 per entry, where an f32 ulp is 1/16, so each addition rounds.
// The shadow repeats the runtime's own per-token arithmetic (f16 cache -> f32, RoPE undone,
// sigma) on the keys about to fold and sums in double: the difference is the accumulation
// error alone. It follows z for every layer and KV head, and one row of M per head.
struct Shadow {
    ei::HParams hp;
    ei_scenario sc;
    uint64_t k_off = 0, v_off = 0, m_off = 0, z_off = 0;
    std::vector<double> z, m_row;
    int64_t folds = 0;

    Shadow(const ei::HParams& h, const ei_plan* plan) : hp(h) {
        sc.struct_size = sizeof sc;
        ok(ei_plan_scenario(plan, &sc), "ei_plan_scenario");
        if (sc.kv_type != 0 || sc.memory_rope != 0 || sc.memory_rule != 0) {
            throw std::runtime_error("the shadow follows f16 keys, NoPE memory and the linear rule only");
        }
        for (int32_t i = 0; i < ei_plan_region_count(plan); ++i) {
            const char* name;
            uint64_t off, size;
            ok(ei_plan_region(plan, i, &name, &off, &size), "ei_plan_region");
            const std::string n = name;
            if (n == "kv.k") k_off = off;
            if (n == "kv.v") v_off = off;
            if (n == "mem.M") m_off = off;
            if (n == "mem.z") z_off = off;
        }
        z.assign(size_t(heads()) * hp.head_dim, 0.0);
        m_row.assign(size_t(heads()) * hp.head_dim, 0.0);
    }
    int32_t heads() const { return hp.n_layer * hp.n_head_kv; }
    int32_t row_of(int32_t head) const { return head % hp.head_dim; }  // a different M row per head

    // Called before an eval of n (<= L) tokens: repeats the fold that eval will run, if any.
    void before_eval(const uint8_t* pool, int64_t n_past, int64_t folded, int32_t n) {
        const int64_t ring_start = sc.n_sink + folded;
        if (n_past + n - ring_start <= int64_t{sc.n_window} + sc.n_batch) return;
        const int32_t D = hp.head_dim, KV = hp.n_head_kv, kv_dim = hp.n_embd_kv();
        const int64_t ring = int64_t{sc.n_window} + sc.n_batch, slots = sc.n_sink + ring;
        float k[1024];
        for (int64_t pos = ring_start; pos < ring_start + sc.n_batch; ++pos) {
            const int64_t slot = sc.n_sink + (pos - sc.n_sink) % ring;
            for (int32_t l = 0; l < hp.n_layer; ++l) {
                const uint16_t* K = reinterpret_cast<const uint16_t*>(pool + k_off) + (l * slots + slot) * kv_dim;
                const uint16_t* V = reinterpret_cast<const uint16_t*>(pool + v_off) + (l * slots + slot) * kv_dim;
                for (int32_t hk = 0; hk < KV; ++hk) {
                    const int32_t head = l * KV + hk;
                    for (int32_t i = 0; i < D; ++i) k[i] = ei::cpu::fp16_to_fp32(K[hk * D + i]);
                    ei::cpu::ops::rope(k, k, 1, D, hp.n_rot, -pos, hp.rope_base,
                                       hp.rope_mode == ei::RopeMode::Halves);
                    for (int32_t i = 0; i < D; ++i) z[size_t(head) * D + i] += ei::cpu::ops::sigma(k[i]);
                    const double s = ei::cpu::ops::sigma(k[row_of(head)]);
                    for (int32_t j = 0; j < D; ++j) {
                        m_row[size_t(head) * D + j] += s * double(ei::cpu::fp16_to_fp32(V[hk * D + j]));
                    }
                }
            }
        }
        ++folds;
    }

    struct Report {
        double z_max = 0, z_rel = 0, m_rel = 0;
        bool finite = true;  // every entry of M and z
    };
    // z: worst relative error of any entry; M: worst error of a row relative to that row's
    // largest entry (entries sum signed terms, so a relative error per entry means little).
    Report compare(const uint8_t* pool) const {
        Report r;
        const float* zf = reinterpret_cast<const float*>(pool + z_off);
        const float* mf = reinterpret_cast<const float*>(pool + m_off);
        const int32_t D = hp.head_dim;
        r.finite = all_finite(mf, size_t(heads()) * D * D) && all_finite(zf, size_t(heads()) * D);
        for (int32_t head = 0; head < heads(); ++head) {
            double row_max = 0, row_err = 0;
            for (int32_t i = 0; i < D; ++i) {
                const size_t at = size_t(head) * D + i;
                r.z_max = std::max(r.z_max, double(zf[at]));
                r.z_rel = std::max(r.z_rel, std::fabs(zf[at] - z[at]) / std::max(z[at], 1e-30));
                const double m = mf[(size_t(head) * D + row_of(head)) * D + i];
                row_max = std::max(row_max, std::fabs(m_row[at]));
                row_err = std::max(row_err, std::fabs(m - m_row[at]));
            }
            r.m_rel = std::max(r.m_rel, row_err / std::max(row_max, 1e-30));
        }
        return r;
    }
};

}  // namespace

// A long run on the memory route: prefill chunks of varied length and single decode steps,
// so the prefill graph, the decode graph and the fold all run, and folds fall at varied
// offsets within a chunk. RSS is sampled after a warm-up and then regularly; it must not grow.
TEST(memory_route_soak_keeps_rss_flat_and_values_finite) {
    const int64_t total = env_count("EI_SOAK_TOKENS", 65536);
    const std::string gated = "soak-gated-" + std::to_string(getpid()) + ".gguf";
    {
        ei_model* plain = nullptr;
        if (!ok(ei_model_load(tiny().c_str(), &plain), "ei_model_load")) return;
        int64_t n_layer = 0, n_head = 0;
        ok(ei_model_param(plain, "n_layer", &n_layer), "n_layer");
        ok(ei_model_param(plain, "n_head", &n_head), "n_head");
        ei_model_free(plain);
        write_gated_copy(tiny(), gated, int32_t(n_layer), int32_t(n_head));
    }
    // The runtime's own reading of the copy: every layer must have taken its gate.
    const std::shared_ptr<const ei::Model> internal = ei::Model::load(gated);
    for (const ei::LayerWeights& l : internal->layers()) CHECK(l.gate == ei::LayerWeights::Gate::Scalar);
    ei_model* model = nullptr;
    ei_plan* plan = nullptr;
    ei_session* session = nullptr;
    const bool loaded = ok(ei_model_load(gated.c_str(), &model), "ei_model_load (gated copy)");
    std::remove(gated.c_str());  // mapped now; nothing is left behind
    if (!loaded) return;
    const ei_scenario sc{sizeof(ei_scenario), 128, 64, 512, 1, 0, 0, 2, 0, nullptr, 0, 0, nullptr};  // L, S, W, memory on, linear, NoPE, 2 threads, f16
    if (!ok(ei_plan_create(model, &sc, &plan), "ei_plan_create")) return;
    {
        Pool pool(plan);
        Shadow shadow(internal->hparams(), plan);
        if (!ok(ei_session_create(model, plan, pool.p, pool.size, &session), "ei_session_create")) return;
        int64_t n_vocab = 0;
        ok(ei_model_param(model, "n_vocab", &n_vocab), "n_vocab");
        std::vector<float> logits(static_cast<size_t>(n_vocab));
        std::vector<int32_t> tok(static_cast<size_t>(sc.n_batch));
        std::mt19937 rng(11);
        // 7 full segments, one short one, 31 single tokens: 1024 tokens, ~3% decode steps.
        std::vector<int32_t> pattern;
        for (int i = 0; i < 7; ++i) pattern.push_back(128);
        pattern.push_back(97);
        for (int i = 0; i < 31; ++i) pattern.insert(pattern.begin() + (i * 5) % int(pattern.size()), 1);

        const int64_t warmup = std::max<int64_t>(total / 8, 2 * (sc.n_sink + sc.n_window + sc.n_batch));
        const int64_t every = std::max<int64_t>(total / 32, 256);
        int64_t done = 0, next_sample = warmup, calls = 0, decode_steps = 0, bad_logits = 0;
        int64_t rss_first = -1, rss_last = -1, rss_max = -1, samples = 0;
        const auto t0 = std::chrono::steady_clock::now();
        const double cpu0 = cpu_seconds();
        double shadow_secs = 0;
        for (size_t step = 0; done < total; ++step) {
            const int32_t n = int32_t(std::min<int64_t>(pattern[step % pattern.size()], total - done));
            for (int32_t i = 0; i < n; ++i) tok[size_t(i)] = 3 + int32_t(rng() % 1000);
            int64_t sink, window, memory;
            ok(ei_session_placement(session, &sink, &window, &memory), "ei_session_placement");
            const auto ts = std::chrono::steady_clock::now();
            shadow.before_eval(static_cast<const uint8_t*>(pool.p), ei_session_n_past(session), memory, n);
            shadow_secs += seconds_since(ts);
            if (!ok(ei_session_eval(session, tok.data(), n, nullptr), "ei_session_eval")) break;
            // The last position's logits after every eval; every query reads the memory (g = 1/2).
            ok(ei_session_last_logits(session, logits.data(), int32_t(n_vocab)), "ei_session_last_logits");
            if (!all_finite(logits.data(), logits.size()) && bad_logits++ == 0) {
                std::fprintf(stderr, "non-finite logits after %lld tokens\n", (long long)(done + n));
            }
            done += n;
            ++calls;
            decode_steps += n == 1;
            if (done >= next_sample || done == total) {
                const int64_t r = rss_kb();
                if (rss_first < 0) rss_first = r;
                rss_last = r;
                rss_max = std::max(rss_max, r);
                ++samples;
                next_sample += every;
            }
        }
        const double secs = seconds_since(t0), cpu = cpu_seconds() - cpu0;
        int64_t sink, window, memory;
        ok(ei_session_placement(session, &sink, &window, &memory), "ei_session_placement");
        const Shadow::Report m = shadow.compare(static_cast<const uint8_t*>(pool.p));
        std::printf("soak: %lld tokens in %.1f s (%.0f tokens/s; CPU %.1f s, %.1f s of it the double shadow): "
                    "%lld evals, %lld decode steps, %lld folds; sink %lld, window %lld, memory %lld\n",
                    (long long)done, secs, double(done) / secs, cpu, shadow_secs, (long long)calls,
                    (long long)decode_steps, (long long)shadow.folds, (long long)sink, (long long)window, (long long)memory);
        std::printf("soak: RSS after %lld warm-up tokens %lld KiB, last %lld KiB, max %lld KiB "
                    "(%lld samples; growth %lld KiB)\n",
                    (long long)warmup, (long long)rss_first, (long long)rss_last, (long long)rss_max,
                    (long long)samples, (long long)(rss_last - rss_first));
        std::printf("soak: z up to %.4g; f32 vs double: z relative error %.3g, M row error %.3g of the row's "
                    "largest entry; M and z %s; %lld of %lld logit checks non-finite\n",
                    m.z_max, m.z_rel, m.m_rel, m.finite ? "finite" : "NOT FINITE", (long long)bad_logits,
                    (long long)calls);
        CHECK_EQ(done, total);
        CHECK_EQ(sink + window + memory, total);
        CHECK_EQ(memory, shadow.folds * sc.n_batch);
        CHECK_EQ(ei_session_route(session), 1);
        CHECK_EQ(bad_logits, int64_t{0});
        CHECK(samples >= 2);
        CHECK(rss_last - rss_first < 1024);  // < 1 MiB: allocator noise, not per-token growth
        CHECK(rss_max - rss_first < 1024);
        CHECK(m.finite);
        CHECK(m.z_rel < 1e-2);
        CHECK(m.m_rel < 1e-2);
        ei_session_free(session);
    }
    ei_plan_free(plan);
    ei_model_free(model);
}

// Sessions opened and closed one after another on one model, each with its own plan,
// zeroed pool and thread pool, evaluating a 2-token prefill and a decode step.
// EI_SOAK_SESSION_THREADS=1 is for qemu-user, which keeps ~280 KiB of RSS for every guest
// thread created and joined (a bare std::thread shows the same), so with worker threads RSS
// would grow there whatever the runtime does.
TEST(sessions_open_and_close_without_rss_growth) {
    const int64_t n = env_count("EI_SOAK_SESSIONS", 10000);
    const int64_t warm = std::min<int64_t>(500, n / 2);
    ei_model* model = nullptr;
    if (!ok(ei_model_load(tiny().c_str(), &model), "ei_model_load")) return;
    const int32_t threads = int32_t(env_count("EI_SOAK_SESSION_THREADS", 2));
    const ei_scenario sc{sizeof(ei_scenario), 32, 16, 64, 1, 0, 0, threads, 0, nullptr, 0, 0, nullptr};
    int64_t n_vocab = 0;
    ok(ei_model_param(model, "n_vocab", &n_vocab), "n_vocab");
    std::vector<float> logits(static_cast<size_t>(n_vocab));
    int64_t rss_warm = -1, done = 0;
    uint64_t pool_size = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    for (int64_t i = 0; i < n; ++i) {
        ei_plan* plan = nullptr;
        ei_session* s = nullptr;
        if (!ok(ei_plan_create(model, &sc, &plan), "ei_plan_create")) break;
        Pool pool(plan);
        pool_size = pool.size;
        const bool created = ok(ei_session_create(model, plan, pool.p, pool.size, &s), "ei_session_create");
        ei_plan_free(plan);  // the session keeps its own copy
        if (!created) break;
        const int32_t prompt[2] = {1, 3 + int32_t(i % 1000)}, next = 3 + int32_t((i * 7) % 1000);
        bool good = ok(ei_session_eval(s, prompt, 2, nullptr), "ei_session_eval") &&
                    ok(ei_session_eval(s, &next, 1, logits.data()), "ei_session_eval (decode)");
        ei_session_free(s);
        if (!good) break;
        if (!all_finite(logits.data(), logits.size())) {
            std::fprintf(stderr, "session %lld: non-finite logits\n", (long long)i);
            ++check::failures;
            break;
        }
        if (++done == warm) rss_warm = rss_kb();
    }
    const double secs = seconds_since(t0), cpu = cpu_seconds() - cpu0;
    const int64_t rss_end = rss_kb();
    ei_model_free(model);
    std::printf("sessions: %lld opened, evaluated and closed in %.1f s (%.0f us each; CPU %.1f s; %d threads, pool "
                "%.2f MiB); RSS after %lld %lld KiB, at the end %lld KiB (growth %lld KiB)%s\n",
                (long long)done, secs, 1e6 * secs / double(std::max<int64_t>(done, 1)), cpu, threads,
                pool_size / 1048576.0,
                (long long)warm, (long long)rss_warm, (long long)rss_end, (long long)(rss_end - rss_warm),
                EI_SOAK_ASAN ? " [ASan: quarantined frees inflate RSS, leak check instead]" : "");
    CHECK_EQ(done, n);
    // Under ASan freed pools sit in its quarantine, so RSS grows by design there; its leak
    // check at exit is the stronger test of the same thing.
    if (!EI_SOAK_ASAN) CHECK(rss_end - rss_warm < 1024);
}
