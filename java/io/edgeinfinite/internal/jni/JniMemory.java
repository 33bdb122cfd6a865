package io.edgeinfinite.internal.jni;

import io.edgeinfinite.internal.NativeMemory;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * Pool memory under JNI, with the FFM pool's rules: zeroed, aligned to at least 64 bytes,
 * freed exactly once by close() (not by the garbage collector), and any use after close
 * throws {@link IllegalStateException}. The memory comes from JavaCPP's calloc (over-allocated
 * by alignment - 1, then aligned up), so JavaCPP's maxBytes cap, which defaults to the Java
 * heap limit and is small on Android, does not apply to a pool that lives off-heap anyway.
 */
final class JniMemory implements NativeMemory {
    private final Pointer raw;
    private final long address;
    private final long size;
    private boolean closed;

    JniMemory(long size, long alignment) {
        long align = Math.max(64, alignment);
        if (size < 0 || Long.bitCount(align) != 1) {
            throw new IllegalArgumentException("pool of " + size + " bytes aligned to " + alignment);
        }
        raw = Pointer.calloc(Math.addExact(size, align - 1), 1);
        if (raw == null || raw.isNull()) throw new OutOfMemoryError("cannot allocate a pool of " + size + " bytes");
        this.address = (raw.address() + align - 1) & -align;
        this.size = size;
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("pool memory is closed");
    }

    @Override
    public synchronized long address() {
        checkOpen();
        return address;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public synchronized void fill(long offset, long length, byte value) {
        checkOpen();
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new IndexOutOfBoundsException("fill [" + offset + ", " + offset + " + " + length + ") of a pool of "
                    + size + " bytes");
        }
        // A Pointer argument's position is in bytes from its address.
        Pointer.memset(new BytePointer(raw).position(address - raw.address() + offset), value, length);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        Pointer.free(raw);
    }
}
