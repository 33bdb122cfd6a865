package io.edgeinfinite.internal;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.PoolException;
import io.edgeinfinite.TestData;
import org.junit.jupiter.api.Test;

/** The native side refuses pools that do not fit the plan, before touching them. */
class PoolBindingTest {
    @Test
    void nativeRefusesSmallOrMisalignedPools() {
        NativeBinding b = Native.binding();
        long model = b.modelLoad(TestData.model("tiny-llama-q8_0.gguf").toString());
        long plan = b.planCreate(model, 32, 0, 256, 0, -1, -1, 1, 0, "cpu", 0, 0, null);
        long size = b.planPoolSize(plan);
        try (NativeMemory mem = b.allocate(size + 64, 64)) {
            PoolException small = assertThrows(PoolException.class,
                    () -> b.sessionCreate(model, plan, mem.address(), size - 1));
            assertTrue(small.getMessage().contains("too small"), small.getMessage());
            PoolException misaligned = assertThrows(PoolException.class,
                    () -> b.sessionCreate(model, plan, mem.address() + 8, size));
            assertTrue(misaligned.getMessage().contains("aligned"), misaligned.getMessage());
            assertThrows(PoolException.class, () -> b.sessionCreate(model, plan, 0, size));
            long s = b.sessionCreate(model, plan, mem.address(), size);
            b.sessionEval(s, new int[] {1, 2, 3}, null);
            b.sessionFree(s);
        } finally {
            b.planFree(plan);
            b.modelFree(model);
        }
    }

    @Test
    void closedPoolMemoryThrows() {
        NativeMemory mem = Native.binding().allocate(4096, 64);
        mem.fill(0, 4096, (byte) 1);
        mem.close();
        mem.close();
        assertThrows(IllegalStateException.class, () -> mem.fill(0, 16, (byte) 0));
    }
}
