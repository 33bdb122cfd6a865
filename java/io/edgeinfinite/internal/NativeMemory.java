package io.edgeinfinite.internal;

/** Native memory owned by Java (the buffer pool). Closing it frees the memory. */
public interface NativeMemory extends AutoCloseable {
    long address();

    long size();

    /** Fills [offset, offset + length) with value; bounds-checked, throws after close. */
    void fill(long offset, long length, byte value);

    @Override
    void close();
}
