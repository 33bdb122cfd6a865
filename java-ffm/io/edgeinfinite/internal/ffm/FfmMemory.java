package io.edgeinfinite.internal.ffm;

import io.edgeinfinite.internal.NativeMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Pool memory from a shared arena: zeroed, usable from any thread, freed exactly once by
 * close(); any use after close throws IllegalStateException (as JniMemory does).
 */
final class FfmMemory implements NativeMemory {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment segment;

    FfmMemory(long size, long alignment) {
        segment = arena.allocate(size, Math.max(64, alignment));
    }

    @Override
    public long address() {
        if (!arena.scope().isAlive()) throw new IllegalStateException("pool memory is closed");
        return segment.address();
    }

    @Override
    public long size() {
        return segment.byteSize();
    }

    @Override
    public void fill(long offset, long length, byte value) {
        segment.asSlice(offset, length).fill(value);
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) arena.close();
    }
}
