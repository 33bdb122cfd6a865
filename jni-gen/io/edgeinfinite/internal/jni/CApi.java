package io.edgeinfinite.internal.jni;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.annotation.ByPtrPtr;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Const;
import org.bytedeco.javacpp.annotation.MemberGetter;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.CriticalRegion;
import org.bytedeco.javacpp.annotation.Namespace;
import org.bytedeco.javacpp.annotation.NoException;
import org.bytedeco.javacpp.annotation.Platform;

/**
 * The C ABI (cpp/include/edgeinfinite/edgeinfinite.h) described for JavaCPP: one
 * {@code native} method per C function, from which JavaCPP's Builder generates the JNI
 * glue (target/jni-gen/jniEdgeInfinite.cpp, compiled by jni-gen/CMakeLists.txt into
 * libjniEdgeInfinite.so, linked to libedgeinfinite.so). Only {@link JniBinding} calls it.
 *
 * <p>Mapping rules, so that every hot call is free of Java-side allocation:
 * <ul>
 *   <li>handles cross as {@code @Cast("T*") long} (the address), the way NativeBinding
 *       holds them;
 *   <li>NUL-terminated strings cross as {@code String}; the glue is compiled with
 *       {@code STRING_BYTES_CHARSET="UTF-8"}, so they are UTF-8 whatever the JVM's default
 *       charset (JDK 17 in a C locale would otherwise use ASCII);
 *   <li>out-parameters are one-element primitive arrays; out-strings of a given length are
 *       {@code @ByPtrPtr BytePointer}s whose address the glue sets after the call;
 *   <li>buffers of known length (token ids, logits, text) are primitive arrays.
 * </ul>
 *
 * <p>No static initializer calls {@code Loader.load()}: {@link JniBinding} loads the two
 * libraries itself (one cache and one override property for both bindings; on Android
 * through {@code System.loadLibrary}) before it touches this class.
 */
@Platform(include = "edgeinfinite/edgeinfinite.h", link = "edgeinfinite", library = "jniEdgeInfinite")
@Namespace  // the C ABI lives in the global namespace
@NoException  // no C++ exception ever crosses the C ABI, so the glue needs no try/catch
public final class CApi {
    private CApi() {}

    // ---------------------------------------------------------------- library
    public static native @Cast("const char*") String ei_last_error();

    public static native @Cast("const char*") String ei_version();

    public static native int ei_abi_version();

    public static native @Cast("const char*") String ei_cpu_features();

    // ---------------------------------------------------------------- GGUF inspection
    public static native int ei_gguf_open(String path, @Cast("ei_gguf**") @ByPtrPtr Pointer out);

    public static native void ei_gguf_close(@Cast("ei_gguf*") long gguf);

    public static native @Cast("uint32_t") int ei_gguf_version(@Cast("const ei_gguf*") long gguf);

    public static native @Cast("uint64_t") long ei_gguf_file_size(@Cast("const ei_gguf*") long gguf);

    public static native @Cast("uint64_t") long ei_gguf_alignment(@Cast("const ei_gguf*") long gguf);

    public static native @Cast("uint64_t") long ei_gguf_data_offset(@Cast("const ei_gguf*") long gguf);

    public static native @Cast("int64_t") long ei_gguf_kv_count(@Cast("const ei_gguf*") long gguf);

    public static native int ei_gguf_kv(@Cast("const ei_gguf*") long gguf, @Cast("int64_t") long index,
            @Cast("const char**") @ByPtrPtr BytePointer key, @Cast("const ei_value**") @ByPtrPtr Pointer value);

    public static native int ei_value_get_type(@Cast("const ei_value*") long v);

    public static native int ei_value_int(@Cast("const ei_value*") long v, @Cast("int64_t*") long[] out);

    public static native int ei_value_float(@Cast("const ei_value*") long v, double[] out);

    public static native int ei_value_string(@Cast("const ei_value*") long v,
            @Cast("const char**") @ByPtrPtr BytePointer data, @Cast("uint64_t*") long[] len);

    public static native int ei_value_array_type(@Cast("const ei_value*") long v);

    public static native @Cast("int64_t") long ei_value_array_len(@Cast("const ei_value*") long v);

    public static native int ei_value_array_int(@Cast("const ei_value*") long v, @Cast("int64_t") long i,
            @Cast("int64_t*") long[] out);

    public static native int ei_value_array_float(@Cast("const ei_value*") long v, @Cast("int64_t") long i,
            double[] out);

    public static native int ei_value_array_string(@Cast("const ei_value*") long v, @Cast("int64_t") long i,
            @Cast("const char**") @ByPtrPtr BytePointer data, @Cast("uint64_t*") long[] len);

    public static native int ei_value_array_at(@Cast("const ei_value*") long v, @Cast("int64_t") long i,
            @Cast("const ei_value**") @ByPtrPtr Pointer out);

    public static native @Cast("int64_t") long ei_gguf_tensor_count(@Cast("const ei_gguf*") long gguf);

    public static native int ei_gguf_tensor(@Cast("const ei_gguf*") long gguf, @Cast("int64_t") long index,
            @Cast("const char**") @ByPtrPtr BytePointer name, @Cast("int32_t*") int[] type,
            @Cast("int32_t*") int[] nDims, @Cast("int64_t*") long[] dims, @Cast("uint64_t*") long[] offset,
            @Cast("uint64_t*") long[] nBytes);

    public static native @Cast("const char*") String ei_tensor_type_name(@Cast("int32_t") int type);

    // ---------------------------------------------------------------- models, plans, sessions
    public static native int ei_model_load(String path, @Cast("ei_model**") @ByPtrPtr Pointer out);

    public static native int ei_model_load_vocab(String path, @Cast("ei_model**") @ByPtrPtr Pointer out);

    public static native void ei_model_free(@Cast("ei_model*") long model);

    public static native int ei_model_param(@Cast("const ei_model*") long model, String name,
            @Cast("int64_t*") long[] out);

    public static native int ei_plan_create(@Cast("const ei_model*") long model, @Const ei_scenario scenario,
            @Cast("ei_plan**") @ByPtrPtr Pointer out);

    public static native void ei_plan_free(@Cast("ei_plan*") long plan);

    public static native @Cast("uint64_t") long ei_plan_pool_size(@Cast("const ei_plan*") long plan);

    public static native @Cast("uint64_t") long ei_plan_pool_alignment(@Cast("const ei_plan*") long plan);

    public static native int ei_plan_region_count(@Cast("const ei_plan*") long plan);

    public static native int ei_plan_region(@Cast("const ei_plan*") long plan, int index,
            @Cast("const char**") @ByPtrPtr BytePointer name, @Cast("uint64_t*") long[] offset,
            @Cast("uint64_t*") long[] size);

    public static native int ei_session_create(@Cast("const ei_model*") long model, @Cast("const ei_plan*") long plan,
            @Cast("void*") long pool, @Cast("uint64_t") long poolSize, @Cast("ei_session**") @ByPtrPtr Pointer out);

    public static native void ei_session_free(@Cast("ei_session*") long session);

    public static native int ei_plan_scenario(@Cast("const ei_plan*") long plan, ei_scenario out);

    public static native @Cast("int64_t") long ei_session_n_past(@Cast("const ei_session*") long session);

    public static native int ei_session_route(@Cast("const ei_session*") long session);

    public static native int ei_session_plan_route(@Cast("ei_session*") long session,
            @Cast("int64_t") long upcoming);

    public static native int ei_session_placement(@Cast("const ei_session*") long session,
            @Cast("int64_t*") long[] sink, @Cast("int64_t*") long[] window, @Cast("int64_t*") long[] memory);

    public static native @Cast("uint64_t") long ei_session_state_size(@Cast("const ei_session*") long session);

    public static native int ei_session_save(@Cast("const ei_session*") long session, String path);

    public static native int ei_session_load(@Cast("ei_session*") long session, String path);

    public static native int ei_session_reset(@Cast("ei_session*") long session);

    public static native int ei_session_cancel(@Cast("ei_session*") long session, int cancel);

    public static native int ei_session_eval(@Cast("ei_session*") long session, @Cast("const int32_t*") int[] tokens,
            int n, float[] logitsOut);

    // Pinned, not copied twice: a decode step's logits (n_vocab floats, 600 KB for Qwen2.5)
    // come back through here, and the native side is a bare memcpy that never blocks.
    @CriticalRegion
    public static native int ei_session_last_logits(@Cast("const ei_session*") long session, float[] out,
            int nVocab);

    // ---------------------------------------------------------------- tokens and text
    public static native int ei_tokenize(@Cast("const ei_model*") long model, @Cast("const char*") byte[] text,
            @Cast("uint64_t") long len, int addBos, int parseSpecial, @Cast("int32_t*") int[] out, int capacity,
            @Cast("int32_t*") int[] nOut);

    public static native int ei_tokenize_after(@Cast("const ei_model*") long model, int prev,
            @Cast("const char*") byte[] text, @Cast("uint64_t") long len, int parseSpecial, @Cast("int32_t*") int[] out,
            int capacity, @Cast("int32_t*") int[] nOut);

    public static native int ei_token_piece(@Cast("const ei_model*") long model, int token, int special,
            @Cast("char*") byte[] out, @Cast("uint64_t") long capacity, @Cast("uint64_t*") long[] lenOut);

    public static native int ei_detokenize(@Cast("const ei_model*") long model, @Cast("const int32_t*") int[] ids,
            int n, @Cast("char*") byte[] out, @Cast("uint64_t") long capacity, @Cast("uint64_t*") long[] lenOut);

    public static native int ei_chat_format(@Cast("const ei_model*") long model, String formatName,
            @Cast("const char* const*") PointerPointer<?> roles, @Cast("const char* const*") PointerPointer<?> contents,
            int n, int addGenerationPrompt, @Cast("char*") byte[] out, @Cast("uint64_t") long capacity,
            @Cast("uint64_t*") long[] lenOut);

    public static native @Cast("const char*") String ei_model_chat_format(@Cast("const ei_model*") long model);

    public static native @Cast("const char*") String ei_chat_detect(String jinjaTemplate);

    public static native @Cast("const char*") String ei_chat_stop_string(String formatName, int index);

    // ---------------------------------------------------------------- generation
    public static native int ei_generate_begin(@Cast("ei_session*") long session, @Cast("const int32_t*") int[] prompt,
            int n, int nEvaluated, @Const ei_sampling sampling, @Cast("const char* const*") PointerPointer<?> stopStrings,
            int nStops);

    public static native int ei_generate_next(@Cast("ei_session*") long session,
            @Cast("const char**") @ByPtrPtr BytePointer piece, @Cast("uint64_t*") long[] len,
            @Cast("int32_t*") int[] token, @Cast("int32_t*") int[] done);

    // ---------------------------------------------------------------- quantization (ei quantize)
    public static native @Cast("uint64_t") long ei_tensor_row_size(int type, @Cast("int64_t") long nCols);

    public static native int ei_quantize_rows(int dstType, int srcType, @Cast("const void*") byte[] src,
            @Cast("uint64_t") long srcSize, @Cast("int64_t") long rows, @Cast("int64_t") long cols,
            @Cast("const float*") float[] importance, int nThreads, @Cast("void*") byte[] dst,
            @Cast("uint64_t") long dstSize);

    // ---------------------------------------------------------------- importance matrix
    public static native int ei_session_imatrix_start(@Cast("ei_session*") long session, int includeOutput);

    public static native int ei_session_imatrix_count(@Cast("const ei_session*") long session);

    public static native int ei_session_imatrix_entry(@Cast("const ei_session*") long session, int index,
            @Cast("const char**") @ByPtrPtr BytePointer name, @Cast("int64_t*") long[] nCols,
            @Cast("int64_t*") long[] rows, float[] sums, @Cast("int64_t") long capacity);

    public static native int ei_session_imatrix_stop(@Cast("ei_session*") long session);

    // ---------------------------------------------------------------- activation ranges
    public static native int ei_session_ranges_start(@Cast("ei_session*") long session);

    public static native int ei_session_ranges_count(@Cast("const ei_session*") long session);

    public static native int ei_session_ranges_entry(@Cast("const ei_session*") long session, int index,
            @Cast("const char**") @ByPtrPtr BytePointer name, double[] min, double[] max, @Cast("uint64_t*") long[] count,
            @Cast("const double*") double[] quantiles, double[] absQuantiles, int nQuantiles);

    public static native int ei_session_ranges_stop(@Cast("ei_session*") long session);

    // ---------------------------------------------------------------- gate fitting (ei fit-gates)

    public static native int ei_fit_gates(@Cast("const ei_plan*") long plan, int gate, int steps, double ridge,
            @Cast("const int32_t*") int[] tokens, @Cast("const float*") float[] weights,
            @Cast("const int64_t*") long[] lengths, int nSeqs, float[] gateW, float[] gateB, double[] report);

    // ---------------------------------------------------------------- devices (ei devices)

    public static native int ei_device_count();

    public static native int ei_device_get(int index, @Cast("const char**") @ByPtrPtr BytePointer name,
            @Cast("const char**") @ByPtrPtr BytePointer kind, @Cast("const char**") @ByPtrPtr BytePointer description,
            @Cast("const char**") @ByPtrPtr BytePointer vendor, @Cast("const char**") @ByPtrPtr BytePointer driver,
            @Cast("const char**") @ByPtrPtr BytePointer features, @Cast("uint64_t*") long[] memory,
            @Cast("uint64_t*") long[] maxAlloc, @Cast("int32_t*") int[] computeUnits);

    public static native @Cast("const char*") String ei_plan_device(@Cast("const ei_plan*") long plan);

    public static native int ei_plan_fallback_count(@Cast("const ei_plan*") long plan);

    public static native int ei_plan_fallback(@Cast("const ei_plan*") long plan, int index,
            @Cast("const char**") @ByPtrPtr BytePointer graph, @Cast("int32_t*") int[] opIndex,
            @Cast("const char**") @ByPtrPtr BytePointer op, @Cast("int32_t*") int[] layer,
            @Cast("const char**") @ByPtrPtr BytePointer reason);

    public static native int ei_plan_graph_ops(@Cast("const ei_plan*") long plan, String graph,
            @Cast("int32_t*") int[] total, @Cast("int32_t*") int[] onCpu);

    // ---------------------------------------------------------------- graph tables (issue 14)

    public static native int ei_plan_describe_graph(@Cast("const ei_plan*") long plan, String graph,
            @Cast("char*") byte[] out, @Cast("uint64_t") long capacity, @Cast("uint64_t*") long[] lenOut);

    // ---------------------------------------------------------------- NPU preparation (ei npu-prepare)

    public static native int ei_npu_prepare(@Cast("const ei_plan*") long plan, @Cast("const int32_t*") int[] tokens,
            @Cast("int64_t") long nTokens, String outDir, int weightBits, int block, double keep8bit);

    // ---------------------------------------------------------------- structs

    /** sizeof of the extensible structs, for their struct_size (edgeinfinite.h, "Extensible structs"). */
    @MemberGetter
    @Name("sizeof(ei_scenario)")
    public static native int sizeof_ei_scenario();

    @MemberGetter
    @Name("sizeof(ei_sampling)")
    public static native int sizeof_ei_sampling();

    /** struct ei_scenario, allocated natively by JavaCPP; freed by close(). */
    public static final class ei_scenario extends Pointer {
        public ei_scenario() {
            super((Pointer) null);
            allocate();
        }

        private native void allocate();

        public native @Cast("uint32_t") int struct_size();
        public native ei_scenario struct_size(@Cast("uint32_t") int v);
        public native int n_batch();
        public native ei_scenario n_batch(int v);
        public native int n_sink();
        public native ei_scenario n_sink(int v);
        public native int n_window();
        public native ei_scenario n_window(int v);
        public native int memory();
        public native ei_scenario memory(int v);
        public native int memory_rule();
        public native ei_scenario memory_rule(int v);
        public native int memory_rope();
        public native ei_scenario memory_rope(int v);
        public native int n_threads();
        public native ei_scenario n_threads(int v);
        public native int kv_type();
        public native ei_scenario kv_type(int v);
        public native @Cast("const char*") BytePointer device();
        public native ei_scenario device(@Cast("const char*") BytePointer v);
        // Evaluation settings (after device in the C struct).
        public native int gates_off();
        public native ei_scenario gates_off(int v);
        public native int sink_positions();
        public native ei_scenario sink_positions(int v);
        // Appended in ABI 3 after the first version.
        public native @Cast("const char*") BytePointer cache_dir();
        public native ei_scenario cache_dir(@Cast("const char*") BytePointer v);
    }

    /** struct ei_sampling, allocated natively by JavaCPP; freed by close(). */
    public static final class ei_sampling extends Pointer {
        public ei_sampling() {
            super((Pointer) null);
            allocate();
        }

        private native void allocate();

        public native @Cast("uint32_t") int struct_size();
        public native ei_sampling struct_size(@Cast("uint32_t") int v);
        public native int greedy();
        public native ei_sampling greedy(int v);
        public native float temperature();
        public native ei_sampling temperature(float v);
        public native int top_k();
        public native ei_sampling top_k(int v);
        public native float top_p();
        public native ei_sampling top_p(float v);
        public native float min_p();
        public native ei_sampling min_p(float v);
        public native float repeat_penalty();
        public native ei_sampling repeat_penalty(float v);
        public native int repeat_last_n();
        public native ei_sampling repeat_last_n(int v);
        public native @Cast("uint64_t") long seed();
        public native ei_sampling seed(long v);
        public native int max_tokens();
        public native ei_sampling max_tokens(int v);
    }
}
