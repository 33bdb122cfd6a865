// The memory read bandwidth this machine gives decode: threads each stream their share of a
// 256 MiB buffer (AVX-512 loads), with 4 KiB pages or with transparent huge pages asked for
// (MADV_HUGEPAGE), best of 5. Decode reads every weight once per token, so this bounds it.
//   gcc -O2 -mavx512f -pthread test/bench/read_bandwidth.c -o /tmp/read_bandwidth && /tmp/read_bandwidth 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES (256ull << 20)
static char* buf;
static int n_threads;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void* reader(void* arg) {
    const size_t per = BYTES / n_threads;
    const char* p = buf + (size_t)arg * per;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (size_t o = 0; o < per; o += 128) {
        s0 = _mm512_add_epi32(s0, _mm512_load_si512(p + o));
        s1 = _mm512_add_epi32(s1, _mm512_load_si512(p + o + 64));
    }
    return (void*)(size_t)(unsigned)_mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));  // keeps the loads
}

static double best_of_5(void) {
    double best = 0;
    for (int r = 0; r < 5; ++r) {
        pthread_t th[64];
        const double t0 = now();
        for (long i = 0; i < n_threads; ++i) pthread_create(&th[i], NULL, reader, (void*)i);
        for (int i = 0; i < n_threads; ++i) pthread_join(th[i], NULL);
        const double gbs = BYTES / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

int main(int argc, char** argv) {
    n_threads = argc > 1 ? atoi(argv[1]) : 1;
    if (n_threads < 1 || n_threads > 64) return 1;
    for (int huge = 0; huge < 2; ++huge) {
        buf = aligned_alloc(2u << 20, BYTES);
        if (!buf) return 1;
        if (huge) madvise(buf, BYTES, MADV_HUGEPAGE);
        memset(buf, 1, BYTES);
        printf("%d thread(s), %s: %.1f GB/s\n", n_threads, huge ? "huge pages (MADV_HUGEPAGE)" : "4 KiB pages",
               best_of_5());
        free(buf);
    }
    return 0;
}
