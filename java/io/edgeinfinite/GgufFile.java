package io.edgeinfinite;

import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.Native;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GGUF file's header, read by the native reader: metadata and tensor infos. Reading
 * copies what it needs into Java objects and releases the native mapping, so instances are
 * plain immutable data.
 *
 * <p>Metadata values map to Java as: integers to {@link Long}, floats to {@link Double}, bools
 * to {@link Boolean}, strings to {@link String}, arrays to {@link List} of those (nested
 * arrays to nested lists).
 */
public final class GgufFile {
    private final Path path;
    private final int version;
    private final long fileSize;
    private final long alignment;
    private final long dataOffset;
    private final Map<String, Object> metadata;
    private final Map<String, ValueType> types;
    private final List<TensorInfo> tensors;

    /**
     * The GGUF type of a metadata value (numbers as in the GGUF specification), and for
     * arrays the type of their elements; what a copy needs to write the value back unchanged.
     */
    public record ValueType(int type, int elementType) {}

    private GgufFile(Path path, int version, long fileSize, long alignment, long dataOffset,
            Map<String, Object> metadata, Map<String, ValueType> types, List<TensorInfo> tensors) {
        this.path = path;
        this.version = version;
        this.fileSize = fileSize;
        this.alignment = alignment;
        this.dataOffset = dataOffset;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.types = Collections.unmodifiableMap(types);
        this.tensors = List.copyOf(tensors);
    }

    /**
     * Reads a GGUF file.
     *
     * @throws ModelFormatException naming the field and byte offset of a malformed file
     * @throws EdgeInfiniteException with status IO when the file cannot be opened
     */
    public static GgufFile read(Path path) {
        NativeBinding b = Native.binding();
        long h = b.ggufOpen(path.toString());
        try {
            Map<String, Object> md = new LinkedHashMap<>();
            Map<String, ValueType> types = new LinkedHashMap<>();
            long n = b.ggufKvCount(h);
            for (long i = 0; i < n; i++) {
                String key = b.ggufKvKey(h, i);
                long v = b.ggufKvValue(h, i);
                md.put(key, value(b, v));
                int t = b.valueType(v);
                types.put(key, new ValueType(t, t == ARRAY ? b.arrayType(v) : -1));
            }
            List<TensorInfo> ts = new ArrayList<>();
            long nt = b.ggufTensorCount(h);
            for (long i = 0; i < nt; i++) ts.add(b.ggufTensor(h, i));
            return new GgufFile(path, b.ggufVersion(h), b.ggufFileSize(h), b.ggufAlignment(h), b.ggufDataOffset(h), md,
                    types, ts);
        } finally {
            b.ggufClose(h);
        }
    }

    private static final int UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
            STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12;

    private static Object value(NativeBinding b, long v) {
        int type = b.valueType(v);
        return switch (type) {
            case STRING -> b.valueString(v);
            case BOOL -> b.valueInt(v) != 0;
            case FLOAT32, FLOAT64 -> b.valueFloat(v);
            case ARRAY -> array(b, v);
            default -> b.valueInt(v);
        };
    }

    private static List<Object> array(NativeBinding b, long v) {
        int et = b.arrayType(v);
        long n = b.arrayLength(v);
        List<Object> out = new ArrayList<>((int) Math.min(n, Integer.MAX_VALUE));
        for (long i = 0; i < n; i++) {
            out.add(switch (et) {
                case STRING -> b.arrayString(v, i);
                case BOOL -> b.arrayInt(v, i) != 0;
                case FLOAT32, FLOAT64 -> b.arrayFloat(v, i);
                case ARRAY -> array(b, b.arrayAt(v, i));
                default -> b.arrayInt(v, i);
            });
        }
        return Collections.unmodifiableList(out);
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public long fileSize() {
        return fileSize;
    }

    public long alignment() {
        return alignment;
    }

    /** Byte offset of the tensor data section; a tensor's data starts at dataOffset() + offset(). */
    public long dataOffset() {
        return dataOffset;
    }

    /** The GGUF type of each metadata value. */
    public Map<String, ValueType> types() {
        return types;
    }

    /** All metadata in file order. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    public List<TensorInfo> tensors() {
        return tensors;
    }

    public Optional<TensorInfo> tensor(String name) {
        return tensors.stream().filter(t -> t.name().equals(name)).findFirst();
    }

    public Optional<String> string(String key) {
        return metadata.get(key) instanceof String s ? Optional.of(s) : Optional.empty();
    }

    public Optional<Long> integer(String key) {
        return metadata.get(key) instanceof Long l ? Optional.of(l) : Optional.empty();
    }

    public Optional<Double> real(String key) {
        Object o = metadata.get(key);
        if (o instanceof Double d) return Optional.of(d);
        if (o instanceof Long l) return Optional.of(l.doubleValue());
        return Optional.empty();
    }

    /** Length of an array value, or empty if the key is absent or not an array. */
    public Optional<Integer> arrayLength(String key) {
        return metadata.get(key) instanceof List<?> l ? Optional.of(l.size()) : Optional.empty();
    }
}
