package io.edgeinfinite.internal.jni;

import io.edgeinfinite.EdgeInfiniteException;
import io.edgeinfinite.Device;
import io.edgeinfinite.OpPlacement;
import io.edgeinfinite.PoolRegion;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.NativeMemory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * The C ABI through JNI: the glue JavaCPP generates from {@link CApi}. This is the binding
 * for Android (ART has no FFM) and for JDKs older than 22. Everything on this path compiles
 * at --release 17 and never names java.lang.foreign (a test checks the bytecode).
 */
public final class JniBinding implements NativeBinding {
    /** Base name of the JNI library: libjniEdgeInfinite.so (JavaCPP's "jni" + @Platform(library)). */
    public static final String JNI_LIBRARY = "jniEdgeInfinite";

    private static final int[] NO_INTS = new int[0];

    /**
     * Loads the runtime, then the JNI glue, from files. The runtime goes first so that the
     * glue's DT_NEEDED entry (libedgeinfinite.so) resolves, by its soname, to this very copy
     * (the glue also carries RUNPATH $ORIGIN for the case where both sit in one folder).
     */
    public static JniBinding load(Path runtime, Path jniGlue) {
        System.load(runtime.toAbsolutePath().toString());
        System.load(jniGlue.toAbsolutePath().toString());
        return new JniBinding();
    }

    /** Loads both libraries by name from the system path: how an Android app finds them (jni/<abi>/ in the APK). */
    public static JniBinding loadFromSystem() {
        System.loadLibrary("edgeinfinite");
        System.loadLibrary(JNI_LIBRARY);
        return new JniBinding();
    }

    private JniBinding() {
        int abi = CApi.ei_abi_version();  // fails fast if the glue and the runtime do not fit together
        if (abi <= 0) throw new UnsatisfiedLinkError("edgeinfinite runtime reports ABI version " + abi);
    }

    // ---------------------------------------------------------------- plumbing

    private static void check(int status) {
        if (status != 0) {
            throw EdgeInfiniteException.of(EdgeInfiniteException.Status.fromCode(status), CApi.ei_last_error());
        }
    }

    /** Copies len bytes of UTF-8 owned by native code (a string of known length). */
    private static String utf8(BytePointer data, long len) {
        if (len == 0 || data.isNull()) return "";
        byte[] bytes = new byte[Math.toIntExact(len)];
        data.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static String cString(BytePointer p) {
        return p.isNull() ? null : p.getString(StandardCharsets.UTF_8);
    }

    /** A native array of NUL-terminated UTF-8 strings; close() frees the array and the strings now, not at GC. */
    private static final class CStrings implements AutoCloseable {
        final PointerPointer<BytePointer> array;
        private final BytePointer[] strings;

        CStrings(String[] values) {
            strings = new BytePointer[values.length];
            for (int i = 0; i < values.length; i++) strings[i] = new BytePointer(values[i], StandardCharsets.UTF_8);
            array = new PointerPointer<BytePointer>(strings);
        }

        @Override
        public void close() {
            array.close();
            for (BytePointer s : strings) s.close();
        }
    }

    // ---------------------------------------------------------------- library

    @Override
    public String name() {
        return "jni";
    }

    @Override
    public String version() {
        return CApi.ei_version();
    }

    @Override
    public int abiVersion() {
        return CApi.ei_abi_version();
    }

    @Override
    public String cpuFeatures() {
        return CApi.ei_cpu_features();
    }

    // ---------------------------------------------------------------- GGUF

    @Override
    public long ggufOpen(String path) {
        Pointer out = new Pointer();
        check(CApi.ei_gguf_open(path, out));
        return out.address();
    }

    @Override
    public void ggufClose(long g) {
        CApi.ei_gguf_close(g);
    }

    @Override
    public int ggufVersion(long g) {
        return CApi.ei_gguf_version(g);
    }

    @Override
    public long ggufFileSize(long g) {
        return CApi.ei_gguf_file_size(g);
    }

    @Override
    public long ggufAlignment(long g) {
        return CApi.ei_gguf_alignment(g);
    }

    @Override
    public long ggufDataOffset(long g) {
        return CApi.ei_gguf_data_offset(g);
    }

    @Override
    public long ggufKvCount(long g) {
        return CApi.ei_gguf_kv_count(g);
    }

    @Override
    public String ggufKvKey(long g, long index) {
        BytePointer key = new BytePointer();
        check(CApi.ei_gguf_kv(g, index, key, null));
        return cString(key);
    }

    @Override
    public long ggufKvValue(long g, long index) {
        Pointer value = new Pointer();
        check(CApi.ei_gguf_kv(g, index, null, value));
        return value.address();
    }

    @Override
    public int valueType(long v) {
        return CApi.ei_value_get_type(v);
    }

    @Override
    public long valueInt(long v) {
        long[] out = new long[1];
        check(CApi.ei_value_int(v, out));
        return out[0];
    }

    @Override
    public double valueFloat(long v) {
        double[] out = new double[1];
        check(CApi.ei_value_float(v, out));
        return out[0];
    }

    @Override
    public String valueString(long v) {
        BytePointer data = new BytePointer();
        long[] len = new long[1];
        check(CApi.ei_value_string(v, data, len));
        return utf8(data, len[0]);
    }

    @Override
    public int arrayType(long v) {
        return CApi.ei_value_array_type(v);
    }

    @Override
    public long arrayLength(long v) {
        return CApi.ei_value_array_len(v);
    }

    @Override
    public long arrayInt(long v, long i) {
        long[] out = new long[1];
        check(CApi.ei_value_array_int(v, i, out));
        return out[0];
    }

    @Override
    public double arrayFloat(long v, long i) {
        double[] out = new double[1];
        check(CApi.ei_value_array_float(v, i, out));
        return out[0];
    }

    @Override
    public String arrayString(long v, long i) {
        BytePointer data = new BytePointer();
        long[] len = new long[1];
        check(CApi.ei_value_array_string(v, i, data, len));
        return utf8(data, len[0]);
    }

    @Override
    public long arrayAt(long v, long i) {
        Pointer out = new Pointer();
        check(CApi.ei_value_array_at(v, i, out));
        return out.address();
    }

    @Override
    public long ggufTensorCount(long g) {
        return CApi.ei_gguf_tensor_count(g);
    }

    @Override
    public TensorInfo ggufTensor(long g, long index) {
        BytePointer name = new BytePointer();
        int[] type = new int[1], nDims = new int[1];
        long[] dims = new long[4], offset = new long[1], bytes = new long[1];
        check(CApi.ei_gguf_tensor(g, index, name, type, nDims, dims, offset, bytes));
        long[] shape = java.util.Arrays.copyOf(dims, nDims[0]);
        return new TensorInfo(cString(name), type[0], CApi.ei_tensor_type_name(type[0]), shape, offset[0], bytes[0]);
    }

    // ---------------------------------------------------------------- models, plans, sessions

    @Override
    public long modelLoad(String path) {
        Pointer out = new Pointer();
        check(CApi.ei_model_load(path, out));
        return out.address();
    }

    @Override
    public long modelLoadVocab(String path) {
        Pointer out = new Pointer();
        check(CApi.ei_model_load_vocab(path, out));
        return out.address();
    }

    @Override
    public void modelFree(long m) {
        CApi.ei_model_free(m);
    }

    @Override
    public long modelParam(long m, String name) {
        long[] out = new long[1];
        check(CApi.ei_model_param(m, name, out));
        return out[0];
    }

    @Override
    public String modelChatFormat(long m) {
        return CApi.ei_model_chat_format(m);
    }

    @Override
    public String chatDetect(String jinja) {
        return CApi.ei_chat_detect(jinja);
    }

    @Override
    public String[] chatStops(String format) {
        List<String> out = new ArrayList<>();
        for (int i = 0;; i++) {
            String s = CApi.ei_chat_stop_string(format, i);
            if (s == null) return out.toArray(new String[0]);
            out.add(s);
        }
    }

    @Override
    public long planCreate(long m, int nBatch, int nSink, int nWindow, int memory, int memoryRule, int memoryRope,
            int nThreads, int kvType, String device, int gatesOff, int sinkPositions, String cacheDir) {
        try (CApi.ei_scenario sc = new CApi.ei_scenario();
                BytePointer dev = device == null ? null : new BytePointer(device, StandardCharsets.UTF_8);
                BytePointer cache = cacheDir == null ? null : new BytePointer(cacheDir, StandardCharsets.UTF_8)) {
            sc.struct_size(CApi.sizeof_ei_scenario()).n_batch(nBatch).n_sink(nSink).n_window(nWindow).memory(memory)
                    .memory_rule(memoryRule).memory_rope(memoryRope).n_threads(nThreads).kv_type(kvType).device(dev)
                    .gates_off(gatesOff).sink_positions(sinkPositions).cache_dir(cache);
            Pointer out = new Pointer();
            check(CApi.ei_plan_create(m, sc, out));
            return out.address();
        }
    }

    @Override
    public int[] planScenario(long p) {
        try (CApi.ei_scenario sc = new CApi.ei_scenario()) {
            sc.struct_size(CApi.sizeof_ei_scenario());
            check(CApi.ei_plan_scenario(p, sc));
            return new int[] {sc.n_batch(), sc.n_sink(), sc.n_window(), sc.memory(), sc.memory_rule(),
                sc.memory_rope(), sc.n_threads(), sc.kv_type(), sc.gates_off(),
                sc.sink_positions()};
        }
    }

    @Override
    public void planFree(long p) {
        CApi.ei_plan_free(p);
    }

    @Override
    public long planPoolSize(long p) {
        return CApi.ei_plan_pool_size(p);
    }

    @Override
    public long planPoolAlignment(long p) {
        return CApi.ei_plan_pool_alignment(p);
    }

    @Override
    public PoolRegion[] planRegions(long p) {
        int n = CApi.ei_plan_region_count(p);
        PoolRegion[] out = new PoolRegion[n];
        long[] offset = new long[1], size = new long[1];
        for (int i = 0; i < n; i++) {
            BytePointer name = new BytePointer();
            check(CApi.ei_plan_region(p, i, name, offset, size));
            out[i] = new PoolRegion(cString(name), offset[0], size[0]);
        }
        return out;
    }

    @Override
    public NativeMemory allocate(long size, long alignment) {
        return new JniMemory(size, alignment);
    }

    @Override
    public long sessionCreate(long m, long p, long poolAddress, long poolSize) {
        Pointer out = new Pointer();
        check(CApi.ei_session_create(m, p, poolAddress, poolSize, out));
        return out.address();
    }

    @Override
    public void sessionFree(long s) {
        CApi.ei_session_free(s);
    }

    @Override
    public long sessionNPast(long s) {
        return CApi.ei_session_n_past(s);
    }

    @Override
    public int sessionRoute(long s) {
        return CApi.ei_session_route(s);
    }

    @Override
    public void sessionPlanRoute(long s, long upcoming) {
        check(CApi.ei_session_plan_route(s, upcoming));
    }

    @Override
    public long[] sessionPlacement(long s) {
        long[] sink = new long[1], window = new long[1], memory = new long[1];
        check(CApi.ei_session_placement(s, sink, window, memory));
        return new long[] {sink[0], window[0], memory[0]};
    }

    @Override
    public long sessionStateSize(long s) {
        return CApi.ei_session_state_size(s);
    }

    @Override
    public void sessionSave(long s, String path) {
        check(CApi.ei_session_save(s, path));
    }

    @Override
    public void sessionLoad(long s, String path) {
        check(CApi.ei_session_load(s, path));
    }

    @Override
    public void sessionReset(long s) {
        check(CApi.ei_session_reset(s));
    }

    @Override
    public void sessionCancel(long s, boolean cancel) {
        check(CApi.ei_session_cancel(s, cancel ? 1 : 0));
    }

    @Override
    public void sessionEval(long s, int[] tokens, float[] logitsOut) {
        check(CApi.ei_session_eval(s, tokens, tokens.length, logitsOut));
    }

    @Override
    public void sessionLastLogits(long s, float[] out) {
        check(CApi.ei_session_last_logits(s, out, out.length));
    }

    // ---------------------------------------------------------------- text

    @Override
    public int[] tokenize(long m, String text, boolean addBos, boolean parseSpecial) {
        int bos = addBos ? 1 : 0, ps = parseSpecial ? 1 : 0;
        return tokens(text, (t, out, n) -> CApi.ei_tokenize(m, t, t.length, bos, ps, out, out.length, n));
    }

    @Override
    public int[] tokenizeAfter(long m, int prev, String text, boolean parseSpecial) {
        int ps = parseSpecial ? 1 : 0;
        return tokens(text, (t, out, n) -> CApi.ei_tokenize_after(m, prev, t, t.length, ps, out, out.length, n));
    }

    /** One tokenizing entry point: (UTF-8 text, out, count) -> status. */
    @FunctionalInterface
    private interface TokenCall {
        int run(byte[] text, int[] out, int[] n);
    }

    // Usually enough room; not always: SentencePiece's space prefix (3 bytes) can fall back to
    // byte tokens, so ask again with the count the first call reports.
    private int[] tokens(String text, TokenCall fn) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] out = new int[bytes.length + 2];
        int[] n = new int[1];
        check(fn.run(bytes, out, n));
        if (n[0] > out.length) {
            out = new int[n[0]];
            check(fn.run(bytes, out, n));
        }
        return n[0] == out.length ? out : java.util.Arrays.copyOf(out, n[0]);
    }

    @Override
    public byte[] tokenPiece(long m, int token, boolean special) {
        long[] len = new long[1];
        byte[] out = new byte[64]; // pieces are short; one call almost always does
        check(CApi.ei_token_piece(m, token, special ? 1 : 0, out, out.length, len));
        if (len[0] <= out.length) return java.util.Arrays.copyOf(out, (int) len[0]);
        out = new byte[Math.toIntExact(len[0])];
        check(CApi.ei_token_piece(m, token, special ? 1 : 0, out, out.length, len));
        return out;
    }

    @Override
    public String detokenize(long m, int[] tokens) {
        long[] len = new long[1];
        check(CApi.ei_detokenize(m, tokens, tokens.length, null, 0, len));
        byte[] out = new byte[Math.toIntExact(len[0])];
        check(CApi.ei_detokenize(m, tokens, tokens.length, out, out.length, len));
        return new String(out, StandardCharsets.UTF_8);
    }

    @Override
    public String chatFormat(long m, String format, String[] roles, String[] contents, boolean addGen) {
        try (CStrings r = new CStrings(roles); CStrings c = new CStrings(contents)) {
            int n = roles.length, g = addGen ? 1 : 0;
            long[] len = new long[1];
            check(CApi.ei_chat_format(m, format, r.array, c.array, n, g, null, 0, len));
            byte[] out = new byte[Math.toIntExact(len[0])];
            check(CApi.ei_chat_format(m, format, r.array, c.array, n, g, out, out.length, len));
            return new String(out, StandardCharsets.UTF_8);
        }
    }

    // ---------------------------------------------------------------- generation

    @Override
    public void generateBegin(long s, int[] prompt, int nEvaluated, int greedy, float temperature, int topK,
            float topP, float minP, float repeatPenalty, int repeatLastN, long seed, int maxTokens, String[] stops) {
        try (CApi.ei_sampling sp = new CApi.ei_sampling(); CStrings st = new CStrings(stops)) {
            sp.struct_size(CApi.sizeof_ei_sampling()).greedy(greedy).temperature(temperature).top_k(topK).top_p(topP).min_p(minP)
                    .repeat_penalty(repeatPenalty).repeat_last_n(repeatLastN).seed(seed).max_tokens(maxTokens);
            int[] p = prompt.length == 0 ? NO_INTS : prompt;
            check(CApi.ei_generate_begin(s, p, prompt.length, nEvaluated, sp, st.array, stops.length));
        }
    }

    @Override
    public Step generateNext(long s) {
        BytePointer piece = new BytePointer();
        long[] len = new long[1];
        int[] token = new int[1], done = new int[1];
        check(CApi.ei_generate_next(s, piece, len, token, done));
        return new Step(utf8(piece, len[0]), token[0], done[0]);
    }

    // ---------------------------------------------------------------- quantization (ei quantize)

    @Override
    public long tensorRowSize(int type, long cols) {
        return CApi.ei_tensor_row_size(type, cols);
    }

    @Override
    public void quantizeRows(int dstType, int srcType, byte[] src, long srcBytes, long rows, long cols,
            float[] importance, int threads, byte[] dst, long dstBytes) {
        if (srcBytes > src.length || dstBytes > dst.length || (importance != null && importance.length < cols)) {
            throw new IllegalArgumentException("quantizeRows: buffer smaller than its size");
        }
        check(CApi.ei_quantize_rows(dstType, srcType, src, srcBytes, rows, cols, importance, threads, dst, dstBytes));
    }

    // ---------------------------------------------------------------- importance matrix

    @Override
    public void imatrixStart(long s, boolean includeOutput) {
        check(CApi.ei_session_imatrix_start(s, includeOutput ? 1 : 0));
    }

    @Override
    public int imatrixCount(long s) {
        return CApi.ei_session_imatrix_count(s);
    }

    @Override
    public String imatrixName(long s, int index) {
        BytePointer name = new BytePointer();
        check(CApi.ei_session_imatrix_entry(s, index, name, null, null, null, 0));
        return cString(name);
    }

    @Override
    public long[] imatrixShape(long s, int index) {
        long[] cols = new long[1], rows = new long[1];
        check(CApi.ei_session_imatrix_entry(s, index, null, cols, rows, null, 0));
        return new long[] {cols[0], rows[0]};
    }

    @Override
    public void imatrixSums(long s, int index, float[] sums) {
        check(CApi.ei_session_imatrix_entry(s, index, null, null, null, sums, sums.length));
    }

    @Override
    public void imatrixStop(long s) {
        check(CApi.ei_session_imatrix_stop(s));
    }

    // ---------------------------------------------------------------- activation ranges

    @Override
    public void rangesStart(long s) {
        check(CApi.ei_session_ranges_start(s));
    }

    @Override
    public int rangesCount(long s) {
        return CApi.ei_session_ranges_count(s);
    }

    @Override
    public String rangesName(long s, int index) {
        BytePointer name = new BytePointer();
        check(CApi.ei_session_ranges_entry(s, index, name, null, null, null, null, null, 0));
        return cString(name);
    }

    @Override
    public double[] rangesStats(long s, int index, double[] quantiles) {
        double[] min = new double[1], max = new double[1], out = new double[Math.max(1, quantiles.length)];
        long[] count = new long[1];
        check(CApi.ei_session_ranges_entry(s, index, null, min, max, count, quantiles.length == 0 ? new double[1] : quantiles,
                out, quantiles.length));
        double[] r = new double[3 + quantiles.length];
        r[0] = min[0];
        r[1] = max[0];
        r[2] = count[0];
        System.arraycopy(out, 0, r, 3, quantiles.length);
        return r;
    }

    @Override
    public void rangesStop(long s) {
        check(CApi.ei_session_ranges_stop(s));
    }

    // ---------------------------------------------------------------- gate fitting (ei fit-gates)

    @Override
    public void fitGates(long plan, int gate, int steps, double ridge, int[] tokens, float[] weights, long[] lengths, float[] gateW,
            float[] gateB, double[] report) {
        check(CApi.ei_fit_gates(plan, gate, steps, ridge, tokens, weights, lengths, lengths.length, gateW, gateB, report));
    }

    // ---------------------------------------------------------------- devices (ei devices)

    @Override
    public Device[] devices() {
        int n = CApi.ei_device_count();
        Device[] out = new Device[n];
        long[] memory = new long[1], maxAlloc = new long[1];
        int[] units = new int[1];
        for (int i = 0; i < n; i++) {
            BytePointer name = new BytePointer(), kind = new BytePointer(), description = new BytePointer(),
                    vendor = new BytePointer(), driver = new BytePointer(), features = new BytePointer();
            check(CApi.ei_device_get(i, name, kind, description, vendor, driver, features, memory, maxAlloc, units));
            out[i] = new Device(cString(name), cString(kind), cString(description), cString(vendor), cString(driver),
                    cString(features), memory[0], maxAlloc[0], units[0]);
        }
        return out;
    }

    @Override
    public String planDevice(long plan) {
        return CApi.ei_plan_device(plan);
    }

    @Override
    public OpPlacement.Fallback[] planFallbacks(long plan) {
        int n = CApi.ei_plan_fallback_count(plan);
        OpPlacement.Fallback[] out = new OpPlacement.Fallback[n];
        int[] opIndex = new int[1], layer = new int[1];
        for (int i = 0; i < n; i++) {
            BytePointer graph = new BytePointer(), op = new BytePointer(), reason = new BytePointer();
            check(CApi.ei_plan_fallback(plan, i, graph, opIndex, op, layer, reason));
            out[i] = new OpPlacement.Fallback(cString(graph), opIndex[0], cString(op), layer[0], cString(reason));
        }
        return out;
    }

    @Override
    public int[] planGraphOps(long plan, String graph) {
        int[] total = new int[1], onCpu = new int[1];
        check(CApi.ei_plan_graph_ops(plan, graph, total, onCpu));
        return new int[] {total[0], onCpu[0]};
    }

    // ---------------------------------------------------------------- graph tables (issue 14)

    @Override
    public String planDescribeGraph(long plan, String graph) {
        long[] len = new long[1];
        check(CApi.ei_plan_describe_graph(plan, graph, null, 0, len));
        byte[] out = new byte[Math.toIntExact(len[0])];
        check(CApi.ei_plan_describe_graph(plan, graph, out, out.length, len));
        return new String(out, StandardCharsets.UTF_8);
    }

    // ---------------------------------------------------------------- NPU preparation (ei npu-prepare)

    @Override
    public void npuPrepare(long plan, int[] tokens, String outDir, int weightBits, int block, double keep8bit) {
        check(CApi.ei_npu_prepare(plan, tokens, tokens.length, outDir, weightBits, block, keep8bit));
    }
}
