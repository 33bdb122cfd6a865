package io.edgeinfinite.internal.ffm;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.edgeinfinite.EdgeInfiniteException;
import io.edgeinfinite.Device;
import io.edgeinfinite.OpPlacement;
import io.edgeinfinite.PoolRegion;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.NativeMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The C ABI through Panama FFM: hand-written downcalls over {@link Linker#nativeLinker()}.
 * Compiled at --release 22 from its own source root (java-ffm/); the release-17 code reaches
 * it only by name (Native), so nothing on the JNI path links to java.lang.foreign.
 */
public final class FfmBinding implements NativeBinding {
    private static final Linker LINKER = Linker.nativeLinker();
    private final SymbolLookup lookup;

    // Out-parameters of hot calls live in a small per-thread buffer, so a decode step
    // allocates nothing native.
    private static final ThreadLocal<MemorySegment> SCRATCH =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(256, 16));

    private final MethodHandle lastError, version, abiVersion, cpuFeatures;
    private final MethodHandle ggufOpen, ggufClose, ggufVersion, ggufFileSize, ggufAlignment, ggufDataOffset,
            ggufKvCount, ggufKv;
    private final MethodHandle valueType, valueInt, valueFloat, valueString, arrayType, arrayLen, arrayInt,
            arrayFloat, arrayString, arrayAt, tensorCount, tensor, typeName;
    private final MethodHandle modelLoad, modelLoadVocab, modelFree, modelParam, modelChatFormat, chatDetect, chatStop;
    private final MethodHandle planCreate, planFree, planPoolSize, planPoolAlignment, planRegionCount, planRegion,
            planScenario;
    private final MethodHandle sessionCreate, sessionFree, sessionNPast, sessionReset, sessionCancel, sessionEval, sessionLastLogits,
            sessionRoute, sessionPlanRoute, sessionPlacement, sessionStateSize, sessionSave, sessionLoad;
    private final MethodHandle tokenize, tokenizeAfter, tokenPiece, detokenize, chatFormat, generateBegin, generateNext;
    // quantization (ei quantize)
    private final MethodHandle tensorRowSize, quantizeRows;
    private final MethodHandle imatrixStart, imatrixCount, imatrixEntry, imatrixStop;  // importance matrix
    private final MethodHandle rangesStart, rangesCount, rangesEntry, rangesStop;      // activation ranges
    // gate fitting (ei fit-gates)
    private final MethodHandle fitGates;
    // devices: the registry and the plan's placement (ei devices)
    private final MethodHandle deviceCount, deviceGet, planDevice, planFallbackCount, planFallback, planGraphOps;
    // graph tables (issue 14)
    private final MethodHandle planDescribeGraph;
    // NPU preparation (ei npu-prepare)
    private final MethodHandle npuPrepare;

    // Extensible structs (ABI 3): struct_size first, set to the layout's size.
    private static final MemoryLayout SCENARIO = MemoryLayout.structLayout(
            JAVA_INT.withName("struct_size"),
            JAVA_INT.withName("n_batch"), JAVA_INT.withName("n_sink"), JAVA_INT.withName("n_window"),
            JAVA_INT.withName("memory"), JAVA_INT.withName("memory_rule"), JAVA_INT.withName("memory_rope"),
            JAVA_INT.withName("n_threads"), JAVA_INT.withName("kv_type"), MemoryLayout.paddingLayout(4),
            ADDRESS.withName("device"), JAVA_INT.withName("gates_off"), JAVA_INT.withName("sink_positions"),
            ADDRESS.withName("cache_dir"));
    private static final MemoryLayout SAMPLING = MemoryLayout.structLayout(
            JAVA_INT.withName("struct_size"),
            JAVA_INT.withName("greedy"), JAVA_FLOAT.withName("temperature"), JAVA_INT.withName("top_k"),
            JAVA_FLOAT.withName("top_p"), JAVA_FLOAT.withName("min_p"), JAVA_FLOAT.withName("repeat_penalty"),
            JAVA_INT.withName("repeat_last_n"), JAVA_LONG.withName("seed"),
            JAVA_INT.withName("max_tokens"), MemoryLayout.paddingLayout(4));

    public FfmBinding(Path library) {
        lookup = SymbolLookup.libraryLookup(library, Arena.global());
        lastError = fn("ei_last_error", ADDRESS);
        version = fn("ei_version", ADDRESS);
        abiVersion = fn("ei_abi_version", JAVA_INT);
        cpuFeatures = fn("ei_cpu_features", ADDRESS);
        ggufOpen = fn("ei_gguf_open", JAVA_INT, ADDRESS, ADDRESS);
        ggufClose = fnVoid("ei_gguf_close", ADDRESS);
        ggufVersion = fn("ei_gguf_version", JAVA_INT, ADDRESS);
        ggufFileSize = fn("ei_gguf_file_size", JAVA_LONG, ADDRESS);
        ggufAlignment = fn("ei_gguf_alignment", JAVA_LONG, ADDRESS);
        ggufDataOffset = fn("ei_gguf_data_offset", JAVA_LONG, ADDRESS);
        ggufKvCount = fn("ei_gguf_kv_count", JAVA_LONG, ADDRESS);
        ggufKv = fn("ei_gguf_kv", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS);
        valueType = fn("ei_value_get_type", JAVA_INT, ADDRESS);
        valueInt = fn("ei_value_int", JAVA_INT, ADDRESS, ADDRESS);
        valueFloat = fn("ei_value_float", JAVA_INT, ADDRESS, ADDRESS);
        valueString = fn("ei_value_string", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        arrayType = fn("ei_value_array_type", JAVA_INT, ADDRESS);
        arrayLen = fn("ei_value_array_len", JAVA_LONG, ADDRESS);
        arrayInt = fn("ei_value_array_int", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        arrayFloat = fn("ei_value_array_float", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        arrayString = fn("ei_value_array_string", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS);
        arrayAt = fn("ei_value_array_at", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        tensorCount = fn("ei_gguf_tensor_count", JAVA_LONG, ADDRESS);
        tensor = fn("ei_gguf_tensor", JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS);
        typeName = fn("ei_tensor_type_name", ADDRESS, JAVA_INT);
        modelLoad = fn("ei_model_load", JAVA_INT, ADDRESS, ADDRESS);
        modelLoadVocab = fn("ei_model_load_vocab", JAVA_INT, ADDRESS, ADDRESS);
        modelFree = fnVoid("ei_model_free", ADDRESS);
        modelParam = fn("ei_model_param", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        modelChatFormat = fn("ei_model_chat_format", ADDRESS, ADDRESS);
        chatDetect = fn("ei_chat_detect", ADDRESS, ADDRESS);
        chatStop = fn("ei_chat_stop_string", ADDRESS, ADDRESS, JAVA_INT);
        planCreate = fn("ei_plan_create", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        planFree = fnVoid("ei_plan_free", ADDRESS);
        planPoolSize = fn("ei_plan_pool_size", JAVA_LONG, ADDRESS);
        planPoolAlignment = fn("ei_plan_pool_alignment", JAVA_LONG, ADDRESS);
        planRegionCount = fn("ei_plan_region_count", JAVA_INT, ADDRESS);
        planRegion = fn("ei_plan_region", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        planScenario = fn("ei_plan_scenario", JAVA_INT, ADDRESS, ADDRESS);
        sessionCreate = fn("ei_session_create", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
        sessionFree = fnVoid("ei_session_free", ADDRESS);
        sessionNPast = fn("ei_session_n_past", JAVA_LONG, ADDRESS);
        sessionRoute = fn("ei_session_route", JAVA_INT, ADDRESS);
        sessionPlanRoute = fn("ei_session_plan_route", JAVA_INT, ADDRESS, JAVA_LONG);
        sessionPlacement = fn("ei_session_placement", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        sessionStateSize = fn("ei_session_state_size", JAVA_LONG, ADDRESS);
        sessionSave = fn("ei_session_save", JAVA_INT, ADDRESS, ADDRESS);
        sessionLoad = fn("ei_session_load", JAVA_INT, ADDRESS, ADDRESS);
        sessionReset = fn("ei_session_reset", JAVA_INT, ADDRESS);
        sessionCancel = fn("ei_session_cancel", JAVA_INT, ADDRESS, JAVA_INT);
        sessionEval = fn("ei_session_eval", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
        // A short copy that never calls back: the Java array is passed in place (critical, heap access).
        sessionLastLogits = LINKER.downcallHandle(symbol("ei_session_last_logits"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), Linker.Option.critical(true));
        tokenize = fn("ei_tokenize", JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT,
                ADDRESS);
        detokenize = fn("ei_detokenize", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        tokenizeAfter = fn("ei_tokenize_after", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS,
                JAVA_INT, ADDRESS);
        tokenPiece = fn("ei_token_piece", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS);
        chatFormat = fn("ei_chat_format", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS,
                JAVA_LONG, ADDRESS);
        generateBegin = fn("ei_generate_begin", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS,
                JAVA_INT);
        generateNext = fn("ei_generate_next", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        // quantization (ei quantize)
        tensorRowSize = fn("ei_tensor_row_size", JAVA_LONG, JAVA_INT, JAVA_LONG);
        quantizeRows = fn("ei_quantize_rows", JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        imatrixStart = fn("ei_session_imatrix_start", JAVA_INT, ADDRESS, JAVA_INT);
        imatrixCount = fn("ei_session_imatrix_count", JAVA_INT, ADDRESS);
        imatrixEntry = fn("ei_session_imatrix_entry", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                JAVA_LONG);
        imatrixStop = fn("ei_session_imatrix_stop", JAVA_INT, ADDRESS);
        rangesStart = fn("ei_session_ranges_start", JAVA_INT, ADDRESS);
        rangesCount = fn("ei_session_ranges_count", JAVA_INT, ADDRESS);
        rangesEntry = fn("ei_session_ranges_entry", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_INT);
        rangesStop = fn("ei_session_ranges_stop", JAVA_INT, ADDRESS);
        // gate fitting (ei fit-gates)
        fitGates = fn("ei_fit_gates", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                ADDRESS, ADDRESS);
        // devices: the registry and the plan's placement (ei devices)
        deviceCount = fn("ei_device_count", JAVA_INT);
        deviceGet = fn("ei_device_get", JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS);
        planDevice = fn("ei_plan_device", ADDRESS, ADDRESS);
        planFallbackCount = fn("ei_plan_fallback_count", JAVA_INT, ADDRESS);
        planFallback = fn("ei_plan_fallback", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        planGraphOps = fn("ei_plan_graph_ops", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        // graph tables (issue 14)
        planDescribeGraph = fn("ei_plan_describe_graph", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
        // NPU preparation (ei npu-prepare)
        npuPrepare = fn("ei_npu_prepare", JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT, JAVA_DOUBLE);
    }

    private MethodHandle fn(String name, MemoryLayout ret, MemoryLayout... args) {
        return LINKER.downcallHandle(symbol(name), FunctionDescriptor.of(ret, args));
    }

    private MethodHandle fnVoid(String name, MemoryLayout... args) {
        return LINKER.downcallHandle(symbol(name), FunctionDescriptor.ofVoid(args));
    }

    private MemorySegment symbol(String name) {
        return lookup.find(name).orElseThrow(() -> new UnsatisfiedLinkError("native library lacks " + name));
    }

    // ---------------------------------------------------------------- plumbing

    /** Runs a native call; a throwable from the linker is a bug, not a user error. */
    @FunctionalInterface
    private interface Call<T> {
        T run() throws Throwable;
    }

    private static <T> T call(Call<T> c) {
        try {
            return c.run();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("native call failed", t);
        }
    }

    private void check(int status) {
        if (status != 0) {
            String msg = cString(call(() -> (MemorySegment) lastError.invokeExact()));
            throw EdgeInfiniteException.of(EdgeInfiniteException.Status.fromCode(status), msg);
        }
    }

    private static String cString(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? null : p.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static String utf8(MemorySegment data, long len) {
        if (len == 0) return "";
        byte[] bytes = data.reinterpret(len).toArray(JAVA_BYTE);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static MemorySegment ptr(long address) {
        return MemorySegment.ofAddress(address);
    }

    private static MemorySegment scratch() {
        return SCRATCH.get();
    }

    // ---------------------------------------------------------------- library

    @Override
    public String name() {
        return "ffm";
    }

    @Override
    public String version() {
        return cString(call(() -> (MemorySegment) version.invokeExact()));
    }

    @Override
    public int abiVersion() {
        return call(() -> (int) abiVersion.invokeExact());
    }

    @Override
    public String cpuFeatures() {
        return cString(call(() -> (MemorySegment) cpuFeatures.invokeExact()));
    }

    // ---------------------------------------------------------------- GGUF

    /** Calls an open-style function: status f(const char* path, T** out). */
    private long openHandle(MethodHandle f, String path) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            MemorySegment p = a.allocateFrom(path);
            check(call(() -> (int) f.invokeExact(p, out)));
            return out.get(ADDRESS, 0).address();
        }
    }

    @Override
    public long ggufOpen(String path) {
        return openHandle(ggufOpen, path);
    }

    @Override
    public void ggufClose(long g) {
        call(() -> {
            ggufClose.invokeExact(ptr(g));
            return null;
        });
    }

    @Override
    public int ggufVersion(long g) {
        return call(() -> (int) ggufVersion.invokeExact(ptr(g)));
    }

    @Override
    public long ggufFileSize(long g) {
        return call(() -> (long) ggufFileSize.invokeExact(ptr(g)));
    }

    @Override
    public long ggufAlignment(long g) {
        return call(() -> (long) ggufAlignment.invokeExact(ptr(g)));
    }

    @Override
    public long ggufDataOffset(long g) {
        return call(() -> (long) ggufDataOffset.invokeExact(ptr(g)));
    }

    @Override
    public long ggufKvCount(long g) {
        return call(() -> (long) ggufKvCount.invokeExact(ptr(g)));
    }

    @Override
    public String ggufKvKey(long g, long index) {
        MemorySegment s = scratch();
        check(call(() -> (int) ggufKv.invokeExact(ptr(g), index, s, MemorySegment.NULL)));
        return cString(s.get(ADDRESS, 0));
    }

    @Override
    public long ggufKvValue(long g, long index) {
        MemorySegment s = scratch();
        check(call(() -> (int) ggufKv.invokeExact(ptr(g), index, MemorySegment.NULL, s)));
        return s.get(ADDRESS, 0).address();
    }

    @Override
    public int valueType(long v) {
        return call(() -> (int) valueType.invokeExact(ptr(v)));
    }

    @Override
    public long valueInt(long v) {
        MemorySegment s = scratch();
        check(call(() -> (int) valueInt.invokeExact(ptr(v), s)));
        return s.get(JAVA_LONG, 0);
    }

    @Override
    public double valueFloat(long v) {
        MemorySegment s = scratch();
        check(call(() -> (int) valueFloat.invokeExact(ptr(v), s)));
        return s.get(JAVA_DOUBLE, 0);
    }

    @Override
    public String valueString(long v) {
        MemorySegment s = scratch();
        check(call(() -> (int) valueString.invokeExact(ptr(v), s, s.asSlice(8))));
        return utf8(s.get(ADDRESS, 0), s.get(JAVA_LONG, 8));
    }

    @Override
    public int arrayType(long v) {
        return call(() -> (int) arrayType.invokeExact(ptr(v)));
    }

    @Override
    public long arrayLength(long v) {
        return call(() -> (long) arrayLen.invokeExact(ptr(v)));
    }

    @Override
    public long arrayInt(long v, long i) {
        MemorySegment s = scratch();
        check(call(() -> (int) arrayInt.invokeExact(ptr(v), i, s)));
        return s.get(JAVA_LONG, 0);
    }

    @Override
    public double arrayFloat(long v, long i) {
        MemorySegment s = scratch();
        check(call(() -> (int) arrayFloat.invokeExact(ptr(v), i, s)));
        return s.get(JAVA_DOUBLE, 0);
    }

    @Override
    public String arrayString(long v, long i) {
        MemorySegment s = scratch();
        check(call(() -> (int) arrayString.invokeExact(ptr(v), i, s, s.asSlice(8))));
        return utf8(s.get(ADDRESS, 0), s.get(JAVA_LONG, 8));
    }

    @Override
    public long arrayAt(long v, long i) {
        MemorySegment s = scratch();
        check(call(() -> (int) arrayAt.invokeExact(ptr(v), i, s)));
        return s.get(ADDRESS, 0).address();
    }

    @Override
    public long ggufTensorCount(long g) {
        return call(() -> (long) tensorCount.invokeExact(ptr(g)));
    }

    @Override
    public TensorInfo ggufTensor(long g, long index) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(ADDRESS), type = a.allocate(JAVA_INT), nd = a.allocate(JAVA_INT);
            MemorySegment dims = a.allocate(JAVA_LONG, 4), off = a.allocate(JAVA_LONG), bytes = a.allocate(JAVA_LONG);
            check(call(() -> (int) tensor.invokeExact(ptr(g), index, name, type, nd, dims, off, bytes)));
            int t = type.get(JAVA_INT, 0);
            long[] shape = new long[nd.get(JAVA_INT, 0)];
            for (int d = 0; d < shape.length; d++) shape[d] = dims.getAtIndex(JAVA_LONG, d);
            String tn = cString(call(() -> (MemorySegment) typeName.invokeExact(t)));
            return new TensorInfo(cString(name.get(ADDRESS, 0)), t, tn, shape, off.get(JAVA_LONG, 0),
                    bytes.get(JAVA_LONG, 0));
        }
    }

    // ---------------------------------------------------------------- models, plans, sessions

    @Override
    public long modelLoad(String path) {
        return openHandle(modelLoad, path);
    }

    @Override
    public long modelLoadVocab(String path) {
        return openHandle(modelLoadVocab, path);
    }

    @Override
    public void modelFree(long m) {
        call(() -> {
            modelFree.invokeExact(ptr(m));
            return null;
        });
    }

    @Override
    public long modelParam(long m, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            MemorySegment n = a.allocateFrom(name);
            check(call(() -> (int) modelParam.invokeExact(ptr(m), n, out)));
            return out.get(JAVA_LONG, 0);
        }
    }

    @Override
    public String modelChatFormat(long m) {
        return cString(call(() -> (MemorySegment) modelChatFormat.invokeExact(ptr(m))));
    }

    @Override
    public String chatDetect(String jinja) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment j = a.allocateFrom(jinja);
            return cString(call(() -> (MemorySegment) chatDetect.invokeExact(j)));
        }
    }

    @Override
    public String[] chatStops(String format) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment f = a.allocateFrom(format);
            java.util.List<String> out = new java.util.ArrayList<>();
            for (int i = 0;; i++) {
                int idx = i;
                String s = cString(call(() -> (MemorySegment) chatStop.invokeExact(f, idx)));
                if (s == null) return out.toArray(String[]::new);
                out.add(s);
            }
        }
    }

    @Override
    public long planCreate(long m, int nBatch, int nSink, int nWindow, int memory, int memoryRule, int memoryRope,
            int nThreads, int kvType, String device, int gatesOff, int sinkPositions, String cacheDir) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sc = a.allocate(SCENARIO);
            sc.set(JAVA_INT, 0, (int) SCENARIO.byteSize());
            int[] fields = {nBatch, nSink, nWindow, memory, memoryRule, memoryRope, nThreads, kvType};
            for (int i = 0; i < fields.length; i++) sc.setAtIndex(JAVA_INT, i + 1, fields[i]);
            sc.set(ADDRESS, 40, device == null ? MemorySegment.NULL : a.allocateFrom(device));
            sc.set(JAVA_INT, 48, gatesOff);
            sc.set(JAVA_INT, 52, sinkPositions);
            sc.set(ADDRESS, 56, cacheDir == null ? MemorySegment.NULL : a.allocateFrom(cacheDir));
            MemorySegment out = a.allocate(ADDRESS);
            check(call(() -> (int) planCreate.invokeExact(ptr(m), sc, out)));
            return out.get(ADDRESS, 0).address();
        }
    }

    @Override
    public int[] planScenario(long p) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sc = a.allocate(SCENARIO);
            sc.set(JAVA_INT, 0, (int) SCENARIO.byteSize());
            check(call(() -> (int) planScenario.invokeExact(ptr(p), sc)));
            int[] r = java.util.Arrays.copyOf(sc.asSlice(4, 32).toArray(JAVA_INT), 10);
            r[8] = sc.get(JAVA_INT, 48);
            r[9] = sc.get(JAVA_INT, 52);
            return r;
        }
    }

    @Override
    public void planFree(long p) {
        call(() -> {
            planFree.invokeExact(ptr(p));
            return null;
        });
    }

    @Override
    public long planPoolSize(long p) {
        return call(() -> (long) planPoolSize.invokeExact(ptr(p)));
    }

    @Override
    public long planPoolAlignment(long p) {
        return call(() -> (long) planPoolAlignment.invokeExact(ptr(p)));
    }

    @Override
    public PoolRegion[] planRegions(long p) {
        int n = call(() -> (int) planRegionCount.invokeExact(ptr(p)));
        PoolRegion[] out = new PoolRegion[n];
        MemorySegment s = scratch();
        for (int i = 0; i < n; i++) {
            int idx = i;
            check(call(() -> (int) planRegion.invokeExact(ptr(p), idx, s, s.asSlice(8), s.asSlice(16))));
            out[i] = new PoolRegion(cString(s.get(ADDRESS, 0)), s.get(JAVA_LONG, 8), s.get(JAVA_LONG, 16));
        }
        return out;
    }

    @Override
    public NativeMemory allocate(long size, long alignment) {
        return new FfmMemory(size, alignment);
    }

    @Override
    public long sessionCreate(long m, long p, long poolAddress, long poolSize) {
        MemorySegment s = scratch();
        check(call(() -> (int) sessionCreate.invokeExact(ptr(m), ptr(p), ptr(poolAddress), poolSize, s)));
        return s.get(ADDRESS, 0).address();
    }

    @Override
    public void sessionFree(long s) {
        call(() -> {
            sessionFree.invokeExact(ptr(s));
            return null;
        });
    }

    @Override
    public long sessionNPast(long s) {
        return call(() -> (long) sessionNPast.invokeExact(ptr(s)));
    }

    @Override
    public int sessionRoute(long s) {
        return call(() -> (int) sessionRoute.invokeExact(ptr(s)));
    }

    @Override
    public void sessionPlanRoute(long s, long upcoming) {
        check(call(() -> (int) sessionPlanRoute.invokeExact(ptr(s), upcoming)));
    }

    @Override
    public long[] sessionPlacement(long s) {
        MemorySegment o = scratch();
        check(call(() -> (int) sessionPlacement.invokeExact(ptr(s), o, o.asSlice(8), o.asSlice(16))));
        return o.asSlice(0, 24).toArray(JAVA_LONG);
    }

    @Override
    public long sessionStateSize(long s) {
        return call(() -> (long) sessionStateSize.invokeExact(ptr(s)));
    }

    @Override
    public void sessionSave(long s, String path) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocateFrom(path);
            check(call(() -> (int) sessionSave.invokeExact(ptr(s), p)));
        }
    }

    @Override
    public void sessionLoad(long s, String path) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocateFrom(path);
            check(call(() -> (int) sessionLoad.invokeExact(ptr(s), p)));
        }
    }

    @Override
    public void sessionReset(long s) {
        check(call(() -> (int) sessionReset.invokeExact(ptr(s))));
    }

    @Override
    public void sessionCancel(long s, boolean cancel) {
        check(call(() -> (int) sessionCancel.invokeExact(ptr(s), cancel ? 1 : 0)));
    }

    @Override
    public void sessionEval(long s, int[] tokens, float[] logitsOut) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocateFrom(JAVA_INT, tokens);
            MemorySegment out = logitsOut == null ? MemorySegment.NULL : a.allocate(JAVA_FLOAT, logitsOut.length);
            check(call(() -> (int) sessionEval.invokeExact(ptr(s), t, tokens.length, out)));
            if (logitsOut != null) MemorySegment.copy(out, JAVA_FLOAT, 0, logitsOut, 0, logitsOut.length);
        }
    }

    @Override
    public void sessionLastLogits(long s, float[] out) {
        MemorySegment o = MemorySegment.ofArray(out);
        check(call(() -> (int) sessionLastLogits.invokeExact(ptr(s), o, out.length)));
    }

    // ---------------------------------------------------------------- text

    @Override
    public int[] tokenize(long m, String text, boolean addBos, boolean parseSpecial) {
        int bos = addBos ? 1 : 0, ps = parseSpecial ? 1 : 0;
        return tokens(text, (t, len, out, cap, n) -> (int) tokenize.invokeExact(ptr(m), t, len, bos, ps, out, cap, n));
    }

    @Override
    public int[] tokenizeAfter(long m, int prev, String text, boolean parseSpecial) {
        int ps = parseSpecial ? 1 : 0;
        return tokens(text, (t, len, out, cap, n) -> (int) tokenizeAfter.invokeExact(ptr(m), prev, t, len, ps, out, cap, n));
    }

    /** One tokenizing entry point: (text, its length, out, capacity, count) -> status. */
    @FunctionalInterface
    private interface TokenCall {
        int run(MemorySegment text, long len, MemorySegment out, int cap, MemorySegment n) throws Throwable;
    }

    // Usually enough room; not always: SentencePiece's space prefix (3 bytes) can fall back
    // to byte tokens, so ask again with the count the first call reports.
    private int[] tokens(String text, TokenCall fn) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, t, JAVA_BYTE, 0, bytes.length);
            MemorySegment n = a.allocate(JAVA_INT);
            int cap = bytes.length + 2;
            MemorySegment out = a.allocate(JAVA_INT, cap);
            check(call(() -> fn.run(t, bytes.length, out, cap, n)));
            int count = n.get(JAVA_INT, 0);
            if (count > cap) {
                MemorySegment big = a.allocate(JAVA_INT, count);
                check(call(() -> fn.run(t, bytes.length, big, count, n)));
                return big.asSlice(0, (long) count * 4).toArray(JAVA_INT);
            }
            return out.asSlice(0, (long) count * 4).toArray(JAVA_INT);
        }
    }

    @Override
    public byte[] tokenPiece(long m, int token, boolean special) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment len = a.allocate(JAVA_LONG);
            int sp = special ? 1 : 0;
            // Pieces are short; one call almost always does.
            MemorySegment out = a.allocate(64);
            check(call(() -> (int) tokenPiece.invokeExact(ptr(m), token, sp, out, 64L, len)));
            long n = len.get(JAVA_LONG, 0);
            if (n <= 64) return out.asSlice(0, n).toArray(JAVA_BYTE);
            MemorySegment big = a.allocate(n);
            check(call(() -> (int) tokenPiece.invokeExact(ptr(m), token, sp, big, n, len)));
            return big.toArray(JAVA_BYTE);
        }
    }

    @Override
    public String detokenize(long m, int[] tokens) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocateFrom(JAVA_INT, tokens);
            MemorySegment len = a.allocate(JAVA_LONG);
            check(call(() -> (int) detokenize.invokeExact(ptr(m), t, tokens.length, MemorySegment.NULL, 0L, len)));
            long n = len.get(JAVA_LONG, 0);
            MemorySegment out = a.allocate(Math.max(1, n));
            check(call(() -> (int) detokenize.invokeExact(ptr(m), t, tokens.length, out, n, len)));
            return utf8(out, n);
        }
    }

    @Override
    public String chatFormat(long m, String format, String[] roles, String[] contents, boolean addGen) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment r = a.allocate(ADDRESS, Math.max(1, roles.length));
            MemorySegment c = a.allocate(ADDRESS, Math.max(1, contents.length));
            for (int i = 0; i < roles.length; i++) {
                r.setAtIndex(ADDRESS, i, a.allocateFrom(roles[i]));
                c.setAtIndex(ADDRESS, i, a.allocateFrom(contents[i]));
            }
            MemorySegment f = format == null ? MemorySegment.NULL : a.allocateFrom(format);
            MemorySegment len = a.allocate(JAVA_LONG);
            int n = roles.length, g = addGen ? 1 : 0;
            check(call(() -> (int) chatFormat.invokeExact(ptr(m), f, r, c, n, g, MemorySegment.NULL, 0L, len)));
            long size = len.get(JAVA_LONG, 0);
            MemorySegment out = a.allocate(Math.max(1, size));
            check(call(() -> (int) chatFormat.invokeExact(ptr(m), f, r, c, n, g, out, size, len)));
            return utf8(out, size);
        }
    }

    // ---------------------------------------------------------------- generation

    @Override
    public void generateBegin(long s, int[] prompt, int nEvaluated, int greedy, float temperature, int topK, float topP, float minP,
            float repeatPenalty, int repeatLastN, long seed, int maxTokens, String[] stops) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sp = a.allocate(SAMPLING);
            sp.set(JAVA_INT, 0, (int) SAMPLING.byteSize());
            sp.set(JAVA_INT, 4, greedy);
            sp.set(JAVA_FLOAT, 8, temperature);
            sp.set(JAVA_INT, 12, topK);
            sp.set(JAVA_FLOAT, 16, topP);
            sp.set(JAVA_FLOAT, 20, minP);
            sp.set(JAVA_FLOAT, 24, repeatPenalty);
            sp.set(JAVA_INT, 28, repeatLastN);
            sp.set(JAVA_LONG, 32, seed);
            sp.set(JAVA_INT, 40, maxTokens);
            MemorySegment st = a.allocate(ADDRESS, Math.max(1, stops.length));
            for (int i = 0; i < stops.length; i++) st.setAtIndex(ADDRESS, i, a.allocateFrom(stops[i]));
            MemorySegment p = a.allocateFrom(JAVA_INT, prompt);
            check(call(() -> (int) generateBegin.invokeExact(ptr(s), p, prompt.length, nEvaluated, sp, st,
                    stops.length)));
        }
    }

    @Override
    public Step generateNext(long s) {
        MemorySegment o = scratch();
        check(call(() -> (int) generateNext.invokeExact(ptr(s), o, o.asSlice(8), o.asSlice(16), o.asSlice(20))));
        String text = utf8(o.get(ADDRESS, 0), o.get(JAVA_LONG, 8));
        return new Step(text, o.get(JAVA_INT, 16), o.get(JAVA_INT, 20));
    }

    // ---------------------------------------------------------------- quantization (ei quantize)

    @Override
    public long tensorRowSize(int type, long cols) {
        return call(() -> (long) tensorRowSize.invokeExact(type, cols));
    }

    @Override
    public void quantizeRows(int dstType, int srcType, byte[] src, long srcBytes, long rows, long cols,
            float[] importance, int threads, byte[] dst, long dstBytes) {
        if (srcBytes > src.length || dstBytes > dst.length || (importance != null && importance.length < cols)) {
            throw new IllegalArgumentException("quantizeRows: buffer smaller than its size");
        }
        // Copied through native memory: the call runs for a while on several native threads,
        // longer than heap arrays should stay pinned.
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, srcBytes), 64), d = a.allocate(Math.max(1, dstBytes), 64);
            MemorySegment.copy(src, 0, s, JAVA_BYTE, 0, (int) srcBytes);
            MemorySegment imp = importance == null ? MemorySegment.NULL : a.allocateFrom(JAVA_FLOAT, importance);
            check(call(() -> (int) quantizeRows.invokeExact(dstType, srcType, s, srcBytes, rows, cols, imp, threads, d,
                    dstBytes)));
            MemorySegment.copy(d, JAVA_BYTE, 0, dst, 0, (int) dstBytes);
        }
    }

    // ---------------------------------------------------------------- importance matrix

    @Override
    public void imatrixStart(long s, boolean includeOutput) {
        check(call(() -> (int) imatrixStart.invokeExact(ptr(s), includeOutput ? 1 : 0)));
    }

    @Override
    public int imatrixCount(long s) {
        return call(() -> (int) imatrixCount.invokeExact(ptr(s)));
    }

    @Override
    public String imatrixName(long s, int index) {
        MemorySegment o = scratch();
        check(call(() -> (int) imatrixEntry.invokeExact(ptr(s), index, o, MemorySegment.NULL, MemorySegment.NULL,
                MemorySegment.NULL, 0L)));
        return cString(o.get(ADDRESS, 0));
    }

    @Override
    public long[] imatrixShape(long s, int index) {
        MemorySegment o = scratch();
        check(call(() -> (int) imatrixEntry.invokeExact(ptr(s), index, MemorySegment.NULL, o, o.asSlice(8),
                MemorySegment.NULL, 0L)));
        return new long[] {o.get(JAVA_LONG, 0), o.get(JAVA_LONG, 8)};
    }

    @Override
    public void imatrixSums(long s, int index, float[] sums) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_FLOAT, Math.max(1, sums.length));
            check(call(() -> (int) imatrixEntry.invokeExact(ptr(s), index, MemorySegment.NULL, MemorySegment.NULL,
                    MemorySegment.NULL, out, (long) sums.length)));
            MemorySegment.copy(out, JAVA_FLOAT, 0, sums, 0, sums.length);
        }
    }

    @Override
    public void imatrixStop(long s) {
        check(call(() -> (int) imatrixStop.invokeExact(ptr(s))));
    }

    // ---------------------------------------------------------------- activation ranges

    @Override
    public void rangesStart(long s) {
        check(call(() -> (int) rangesStart.invokeExact(ptr(s))));
    }

    @Override
    public int rangesCount(long s) {
        return call(() -> (int) rangesCount.invokeExact(ptr(s)));
    }

    @Override
    public String rangesName(long s, int index) {
        MemorySegment o = scratch();
        check(call(() -> (int) rangesEntry.invokeExact(ptr(s), index, o, MemorySegment.NULL, MemorySegment.NULL,
                MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, 0)));
        return cString(o.get(ADDRESS, 0));
    }

    @Override
    public double[] rangesStats(long s, int index, double[] quantiles) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_DOUBLE, 3);
            MemorySegment q = a.allocateFrom(JAVA_DOUBLE, quantiles.length == 0 ? new double[1] : quantiles);
            MemorySegment out = a.allocate(JAVA_DOUBLE, Math.max(1, quantiles.length));
            int n = quantiles.length;
            check(call(() -> (int) rangesEntry.invokeExact(ptr(s), index, MemorySegment.NULL, v, v.asSlice(8), v.asSlice(16),
                    q, out, n)));
            double[] r = new double[3 + n];
            r[0] = v.get(JAVA_DOUBLE, 0);
            r[1] = v.get(JAVA_DOUBLE, 8);
            r[2] = v.get(JAVA_LONG, 16);
            for (int k = 0; k < n; k++) r[3 + k] = out.getAtIndex(JAVA_DOUBLE, k);
            return r;
        }
    }

    @Override
    public void rangesStop(long s) {
        check(call(() -> (int) rangesStop.invokeExact(ptr(s))));
    }

    // ---------------------------------------------------------------- gate fitting (ei fit-gates)

    @Override
    public void fitGates(long plan, int gate, int steps, double ridge, int[] tokens, float[] weights, long[] lengths, float[] gateW,
            float[] gateB, double[] report) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocateFrom(JAVA_INT, tokens);
            MemorySegment w = weights == null ? MemorySegment.NULL : a.allocateFrom(JAVA_FLOAT, weights);
            MemorySegment n = a.allocateFrom(JAVA_LONG, lengths);
            MemorySegment gw = a.allocate(JAVA_FLOAT, gateW.length), gb = a.allocate(JAVA_FLOAT, gateB.length);
            MemorySegment r = a.allocate(JAVA_DOUBLE, report.length);
            check(call(() -> (int) fitGates.invokeExact(ptr(plan), gate, steps, ridge, t, w, n, lengths.length, gw, gb, r)));
            MemorySegment.copy(gw, JAVA_FLOAT, 0, gateW, 0, gateW.length);
            MemorySegment.copy(gb, JAVA_FLOAT, 0, gateB, 0, gateB.length);
            MemorySegment.copy(r, JAVA_DOUBLE, 0, report, 0, report.length);
        }
    }

    // ---------------------------------------------------------------- devices (ei devices)

    @Override
    public Device[] devices() {
        int n = call(() -> (int) deviceCount.invokeExact());
        Device[] out = new Device[n];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(8 * 9, 8);  // six strings, two u64, one i32
            for (int i = 0; i < n; i++) {
                int idx = i;
                check(call(() -> (int) deviceGet.invokeExact(idx, s, s.asSlice(8), s.asSlice(16), s.asSlice(24),
                        s.asSlice(32), s.asSlice(40), s.asSlice(48), s.asSlice(56), s.asSlice(64))));
                out[i] = new Device(cString(s.get(ADDRESS, 0)), cString(s.get(ADDRESS, 8)), cString(s.get(ADDRESS, 16)),
                        cString(s.get(ADDRESS, 24)), cString(s.get(ADDRESS, 32)), cString(s.get(ADDRESS, 40)),
                        s.get(JAVA_LONG, 48), s.get(JAVA_LONG, 56), s.get(JAVA_INT, 64));
            }
        }
        return out;
    }

    @Override
    public String planDevice(long plan) {
        return cString(call(() -> (MemorySegment) planDevice.invokeExact(ptr(plan))));
    }

    @Override
    public OpPlacement.Fallback[] planFallbacks(long plan) {
        int n = call(() -> (int) planFallbackCount.invokeExact(ptr(plan)));
        OpPlacement.Fallback[] out = new OpPlacement.Fallback[n];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(8 * 5, 8);
            for (int i = 0; i < n; i++) {
                int idx = i;
                check(call(() -> (int) planFallback.invokeExact(ptr(plan), idx, s, s.asSlice(8), s.asSlice(16),
                        s.asSlice(24), s.asSlice(32))));
                out[i] = new OpPlacement.Fallback(cString(s.get(ADDRESS, 0)), s.get(JAVA_INT, 8), cString(s.get(ADDRESS, 16)),
                        s.get(JAVA_INT, 24), cString(s.get(ADDRESS, 32)));
            }
        }
        return out;
    }

    @Override
    public int[] planGraphOps(long plan, String graph) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment g = a.allocateFrom(graph);
            MemorySegment s = a.allocate(JAVA_INT, 2);
            check(call(() -> (int) planGraphOps.invokeExact(ptr(plan), g, s, s.asSlice(4))));
            return new int[] {s.get(JAVA_INT, 0), s.get(JAVA_INT, 4)};
        }
    }

    // ---------------------------------------------------------------- graph tables (issue 14)

    @Override
    public String planDescribeGraph(long plan, String graph) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment g = a.allocateFrom(graph);
            MemorySegment len = a.allocate(JAVA_LONG);
            check(call(() -> (int) planDescribeGraph.invokeExact(ptr(plan), g, MemorySegment.NULL, 0L, len)));
            long n = len.get(JAVA_LONG, 0);
            MemorySegment out = a.allocate(Math.max(1, n));
            check(call(() -> (int) planDescribeGraph.invokeExact(ptr(plan), g, out, n, len)));
            return utf8(out, n);
        }
    }

    // ---------------------------------------------------------------- NPU preparation (ei npu-prepare)

    @Override
    public void npuPrepare(long plan, int[] tokens, String outDir, int weightBits, int block, double keep8bit) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocateFrom(JAVA_INT, tokens);
            MemorySegment d = a.allocateFrom(outDir);
            check(call(() -> (int) npuPrepare.invokeExact(ptr(plan), t, (long) tokens.length, d, weightBits, block, keep8bit)));
        }
    }
}
