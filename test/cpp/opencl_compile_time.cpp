// opencl_compile_time MODEL: how long the OpenCL backend takes to become ready, for the
// README's cold / cached figures (not a test: its times depend on the machine and on what the
// driver caches). Prints whether the program came from our binary cache and the time of the
// first 40-token prefill plus one decode step, which includes the driver's own per-kernel
// compilation. Cold: an empty EI_OPENCL_CACHE_DIR, and with PoCL, POCL_KERNEL_CACHE=0.
#include <chrono>
#include <cstdio>
#include <vector>

#include "opencl/opencl_device.h"
#include "session_harness.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: opencl_compile_time MODEL.gguf\n");
        return 2;
    }
    try {
        const auto t0 = std::chrono::steady_clock::now();
        auto rt = ei::opencl::Runtime::get();
        const auto t1 = std::chrono::steady_clock::now();
        ei::Scenario sc;
        sc.n_sink = 4;
        sc.n_window = 64;
        sc.n_batch = 16;
        sc.device = "opencl";
        check::Harness h(argv[1], sc);
        std::vector<int32_t> toks(40);
        for (int i = 0; i < 40; ++i) toks[i] = 3 + i * 17 % 900;
        h.session->eval(toks.data(), 40);
        const int32_t one = 5;
        h.session->eval(&one, 1);
        const auto t2 = std::chrono::steady_clock::now();
        std::printf("%s: program %s in %.3f s; first prefill + decode (driver's kernel compilation included) %.3f s\n",
                    rt->device.name.c_str(), rt->program_from_cache ? "loaded from the cache" : "built from source",
                    std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "opencl_compile_time: %s\n", e.what());
        return 1;
    }
}
