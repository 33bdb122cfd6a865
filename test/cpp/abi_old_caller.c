/* The C ABI from C, linked to the shared library as an application is: a caller built against
 * an older header (its ei_scenario ends at sink_positions, the first version with struct_size)
 * still plans and runs; a struct_size that is no size of the struct is refused with a message.
 * Exits non-zero, naming the failed check, on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeinfinite/edgeinfinite.h"

/* ei_scenario as the older header declared it: no cache_dir. */
typedef struct old_scenario {
    uint32_t struct_size;
    int32_t n_batch, n_sink, n_window, memory, memory_rule, memory_rope, n_threads, kv_type;
    const char* device;
    int32_t gates_off, sink_positions;
} old_scenario;

static int failures = 0;
#define EXPECT(cond)                                                                          \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
                    ei_last_error());                                                         \
            ++failures;                                                                       \
        }                                                                                     \
    } while (0)

int main(void) {
    EXPECT(sizeof(old_scenario) == EI_SCENARIO_SIZE_V1);
    ei_model* model = NULL;
    EXPECT(ei_model_load(EI_TESTDATA_DIR "/models/tiny-llama-q8_0.gguf", &model) == EI_OK);
    if (!model) return 1;

    /* The old struct, followed in memory by bytes the library must not read. */
    struct {
        old_scenario sc;
        unsigned char after[32];
    } old;
    memset(&old, 0xAB, sizeof old);
    old.sc.struct_size = sizeof old.sc;
    old.sc.n_batch = 8;
    old.sc.n_sink = 4;
    old.sc.n_window = 16;
    old.sc.memory = -1;
    old.sc.memory_rule = -1;
    old.sc.memory_rope = -1;
    old.sc.n_threads = 1;
    old.sc.kv_type = 0;
    old.sc.device = "cpu";
    old.sc.gates_off = 0;
    old.sc.sink_positions = 0;
    ei_plan* plan = NULL;
    EXPECT(ei_plan_create(model, (const ei_scenario*)&old.sc, &plan) == EI_OK);
    if (plan) {
        EXPECT(strcmp(ei_plan_device(plan), "cpu") == 0);
        EXPECT(ei_plan_fallback_count(plan) == 0);
        /* Reading the resolved scenario back into the old struct writes nothing past it. */
        memset(&old, 0xCD, sizeof old);
        old.sc.struct_size = sizeof old.sc;
        EXPECT(ei_plan_scenario(plan, (ei_scenario*)&old.sc) == EI_OK);
        EXPECT(old.sc.n_batch == 8 && old.sc.n_sink == 4 && old.sc.n_window == 16 && old.sc.n_threads == 1);
        EXPECT(old.sc.device && strcmp(old.sc.device, "cpu") == 0);
        for (size_t i = 0; i < sizeof old.after; ++i) EXPECT(old.after[i] == 0xCD);

        /* And a session of it runs. */
        const uint64_t size = ei_plan_pool_size(plan), align = ei_plan_pool_alignment(plan);
        void* pool = aligned_alloc(align, (size + align - 1) / align * align);
        ei_session* s = NULL;
        EXPECT(ei_session_create(model, plan, pool, size, &s) == EI_OK);
        const int32_t tokens[5] = {5, 17, 300, 2, 9};
        EXPECT(s && ei_session_eval(s, tokens, 5, NULL) == EI_OK);
        EXPECT(s && ei_session_n_past(s) == 5);
        ei_session_free(s);
        free(pool);
        ei_plan_free(plan);
    }

    /* A size that is no size of the struct: refused, with a message naming the field. */
    const uint32_t bad[] = {0, 8, (uint32_t)EI_SCENARIO_SIZE_V1 - 1, 5000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        ei_scenario sc;
        memset(&sc, 0, sizeof sc);
        sc.struct_size = bad[i];
        sc.n_batch = 8;
        sc.n_window = 16;
        plan = NULL;
        EXPECT(ei_plan_create(model, &sc, &plan) == EI_ERR_INVALID_ARGUMENT);
        EXPECT(plan == NULL);
        EXPECT(strstr(ei_last_error(), "ei_scenario.struct_size") != NULL);
    }
    ei_model_free(model);
    if (failures == 0) printf("abi_old_caller: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
