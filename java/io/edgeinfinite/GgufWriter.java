package io.edgeinfinite;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes GGUF v3 files: metadata, tensor infos, then tensor data streamed from callbacks
 * (so a model of any size is written without holding it in memory). The project's tools use
 * it to write synthetic models and copies of models with EdgeInfinite keys and gates.
 */
public final class GgufWriter {
    /** Streams exactly {@code bytes} bytes of one tensor's data. */
    @FunctionalInterface
    public interface TensorData {
        void write(OutputStream out) throws IOException;
    }

    private record Tensor(String name, int type, long[] shape, long bytes, TensorData data) {}

    private final Map<String, byte[]> metadata = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private int alignment = 32;
    private boolean alignmentKey = true;

    private static final int UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10;

    /**
     * Sets the data alignment (32 by default; a power of two, at least 8) and whether this
     * writer adds the general.alignment key first. false: the key is absent (which means 32) or
     * among the metadata the caller puts, as in a copy that keeps its source's header as it was.
     */
    public GgufWriter alignment(int bytes, boolean writeKey) {
        if (bytes < 8 || Integer.bitCount(bytes) != 1) throw new IllegalArgumentException("bad GGUF alignment " + bytes);
        alignment = bytes;
        alignmentKey = writeKey;
        return this;
    }

    public GgufWriter putString(String key, String value) {
        Buf b = new Buf().u32(STRING).str(value);
        metadata.put(key, b.bytes());
        return this;
    }

    public GgufWriter putUInt32(String key, long value) {
        metadata.put(key, new Buf().u32(UINT32).u32((int) value).bytes());
        return this;
    }

    public GgufWriter putInt32(String key, int value) {
        metadata.put(key, new Buf().u32(INT32).u32(value).bytes());
        return this;
    }

    public GgufWriter putUInt64(String key, long value) {
        metadata.put(key, new Buf().u32(UINT64).u64(value).bytes());
        return this;
    }

    public GgufWriter putFloat32(String key, float value) {
        metadata.put(key, new Buf().u32(FLOAT32).f32(value).bytes());
        return this;
    }

    public GgufWriter putBool(String key, boolean value) {
        metadata.put(key, new Buf().u32(BOOL).u8(value ? 1 : 0).bytes());
        return this;
    }

    public GgufWriter putStringArray(String key, List<String> values) {
        Buf b = new Buf().u32(ARRAY).u32(STRING).u64(values.size());
        for (String s : values) b.str(s);
        metadata.put(key, b.bytes());
        return this;
    }

    public GgufWriter putFloat32Array(String key, float[] values) {
        Buf b = new Buf().u32(ARRAY).u32(FLOAT32).u64(values.length);
        for (float f : values) b.f32(f);
        metadata.put(key, b.bytes());
        return this;
    }

    public GgufWriter putInt32Array(String key, int[] values) {
        Buf b = new Buf().u32(ARRAY).u32(INT32).u64(values.length);
        for (int v : values) b.u32(v);
        metadata.put(key, b.bytes());
        return this;
    }

    /**
     * Writes a value read by {@link GgufFile} back with its original GGUF type, so a copy of a
     * file keeps every key exactly (nested arrays are not supported).
     */
    public GgufWriter putValue(String key, GgufFile.ValueType type, Object value) {
        Buf b = new Buf().u32(type.type());
        if (type.type() == ARRAY) {
            if (type.elementType() == ARRAY) throw new IllegalArgumentException(key + ": nested arrays are not supported");
            List<?> list = (List<?>) value;
            b.u32(type.elementType()).u64(list.size());
            for (Object o : list) scalar(b, type.elementType(), o);
        } else {
            scalar(b, type.type(), value);
        }
        metadata.put(key, b.bytes());
        return this;
    }

    private static void scalar(Buf b, int type, Object v) {
        switch (type) {
            case 0, 1 -> b.u8(((Long) v).intValue());
            case 2, 3 -> b.u16(((Long) v).intValue());
            case UINT32, INT32 -> b.u32(((Long) v).intValue());
            case FLOAT32 -> b.f32(((Double) v).floatValue());
            case BOOL -> b.u8((Boolean) v ? 1 : 0);
            case STRING -> b.str((String) v);
            case UINT64, 11 -> b.u64((Long) v);
            case 12 -> b.f64((Double) v);
            default -> throw new IllegalArgumentException("unknown GGUF value type " + type);
        }
    }

    /**
     * Adds a tensor. shape is innermost first; bytes must be what the type's block layout
     * needs for that shape (checked by readers, including ours).
     */
    public GgufWriter addTensor(String name, int type, long[] shape, long bytes, TensorData data) {
        tensors.add(new Tensor(name, type, shape.clone(), bytes, data));
        return this;
    }

    public void write(Path path) throws IOException {
        try (OutputStream raw = Files.newOutputStream(path); CountingStream out = new CountingStream(raw)) {
            Buf h = new Buf();
            h.raw("GGUF".getBytes(StandardCharsets.US_ASCII)).u32(3).u64(tensors.size())
                    .u64(metadata.size() + (alignmentKey ? 1 : 0));
            if (alignmentKey) h.str("general.alignment").u32(UINT32).u32(alignment);
            for (Map.Entry<String, byte[]> e : metadata.entrySet()) h.str(e.getKey()).raw(e.getValue());
            long offset = 0;
            long[] offsets = new long[tensors.size()];
            for (int i = 0; i < tensors.size(); i++) {
                Tensor t = tensors.get(i);
                h.str(t.name).u32(t.shape.length);
                for (long d : t.shape) h.u64(d);
                h.u32(t.type).u64(offset);
                offsets[i] = offset;
                offset = align(offset + t.bytes);
            }
            out.write(h.bytes());
            pad(out);
            long dataStart = out.count;
            for (int i = 0; i < tensors.size(); i++) {
                Tensor t = tensors.get(i);
                long before = out.count;
                t.data.write(out);
                if (out.count - before != t.bytes) {
                    throw new IOException("tensor " + t.name + " wrote " + (out.count - before) + " bytes, declared "
                            + t.bytes);
                }
                if (out.count - dataStart != offsets[i] + t.bytes) throw new IllegalStateException("offset drift");
                pad(out);
            }
        }
    }

    private long align(long v) {
        return (v + alignment - 1) / alignment * alignment;
    }

    private void pad(CountingStream out) throws IOException {
        long target = align(out.count);
        while (out.count < target) out.write(0);
    }

    private static final class CountingStream extends BufferedOutputStream {
        long count;

        CountingStream(OutputStream out) {
            super(out, 1 << 20);
        }

        @Override
        public synchronized void write(int b) throws IOException {
            super.write(b);
            count++;
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            super.write(b, off, len);
            count += len;
        }
    }

    /** A little-endian byte builder for the header. */
    private static final class Buf {
        private ByteBuffer bb = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);

        private void room(int n) {
            if (bb.remaining() < n) {
                ByteBuffer nb = ByteBuffer.allocate(Math.max(bb.capacity() * 2, bb.position() + n))
                        .order(ByteOrder.LITTLE_ENDIAN);
                bb.flip();
                nb.put(bb);
                bb = nb;
            }
        }

        Buf u8(int v) {
            room(1);
            bb.put((byte) v);
            return this;
        }

        Buf u16(int v) {
            room(2);
            bb.putShort((short) v);
            return this;
        }

        Buf f64(double v) {
            room(8);
            bb.putDouble(v);
            return this;
        }

        Buf u32(int v) {
            room(4);
            bb.putInt(v);
            return this;
        }

        Buf u64(long v) {
            room(8);
            bb.putLong(v);
            return this;
        }

        Buf f32(float v) {
            room(4);
            bb.putFloat(v);
            return this;
        }

        Buf str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            return raw(b);
        }

        Buf raw(byte[] b) {
            room(b.length);
            bb.put(b);
            return this;
        }

        byte[] bytes() {
            byte[] out = new byte[bb.position()];
            bb.duplicate().flip().get(out);
            return out;
        }
    }
}
