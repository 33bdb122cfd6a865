package io.edgeinfinite;

import java.util.Arrays;

/**
 * One tensor of a GGUF file.
 *
 * @param name     tensor name, e.g. {@code blk.0.attn_q.weight}
 * @param type     ggml type number
 * @param typeName ggml type name, e.g. {@code q4_K}
 * @param shape    dimensions, innermost (contiguous) first, as GGUF stores them
 * @param offset   byte offset of the data inside the file's data section
 * @param bytes    size of the data in bytes
 */
public record TensorInfo(String name, int type, String typeName, long[] shape, long offset, long bytes) {
    public TensorInfo {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements (product of the dimensions). */
    public long elements() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    @Override
    public String toString() {
        return name + " " + typeName + " " + Arrays.toString(shape);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && t.name.equals(name) && t.type == type && Arrays.equals(t.shape, shape)
                && t.offset == offset && t.bytes == bytes;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }
}
