package io.edgeinfinite.internal;

import io.edgeinfinite.Device;
import io.edgeinfinite.OpPlacement;
import io.edgeinfinite.PoolRegion;
import io.edgeinfinite.TensorInfo;

/**
 * The C ABI (edgeinfinite.h) as Java sees it: handles are {@code long}s, data crosses as
 * Java arrays and strings. One implementation per way of reaching native code (Panama FFM
 * on desktop JDKs; JNI where FFM does not exist). Every method throws
 * {@link io.edgeinfinite.EdgeInfiniteException} with the native message when the call fails.
 * The public API never exposes this interface's implementation types.
 */
public interface NativeBinding {
    /** "ffm" or "jni". */
    String name();

    String version();

    /** The EI_ABI_VERSION the bindings are written for (edgeinfinite.h); the runtime must report it. */
    int ABI_VERSION = 3;

    int abiVersion();

    String cpuFeatures();

    // ---- GGUF inspection
    long ggufOpen(String path);

    void ggufClose(long gguf);

    int ggufVersion(long gguf);

    long ggufFileSize(long gguf);

    long ggufAlignment(long gguf);

    /** Byte offset of the tensor data section in the file. */
    long ggufDataOffset(long gguf);

    long ggufKvCount(long gguf);

    String ggufKvKey(long gguf, long index);

    /** Address of the metadata value (valid while the file is open). */
    long ggufKvValue(long gguf, long index);

    int valueType(long value);

    long valueInt(long value);

    double valueFloat(long value);

    String valueString(long value);

    int arrayType(long value);

    long arrayLength(long value);

    long arrayInt(long value, long index);

    double arrayFloat(long value, long index);

    String arrayString(long value, long index);

    long arrayAt(long value, long index);

    long ggufTensorCount(long gguf);

    TensorInfo ggufTensor(long gguf, long index);

    // ---- models, plans, sessions
    long modelLoad(String path);

    long modelLoadVocab(String path);

    void modelFree(long model);

    long modelParam(long model, String name);

    String modelChatFormat(long model);

    /** The built-in chat format a Jinja template is recognised as, or "" if none. */
    String chatDetect(String jinja);

    /** Stop strings of a named chat format (empty for an unknown one). */
    String[] chatStops(String format);

    /** Negative settings take the model's edgeinfinite.* defaults (see ei_scenario). */
    long planCreate(long model, int nBatch, int nSink, int nWindow, int memory, int memoryRule, int memoryRope,
            int nThreads, int kvType, String device, int gatesOff, int sinkPositions, String cacheDir);

    /** The plan's resolved scenario: {L, S, W, memory, rule, rope, threads, kvType, gatesOff, sinkPositions}. */
    int[] planScenario(long plan);

    void planFree(long plan);

    long planPoolSize(long plan);

    long planPoolAlignment(long plan);

    PoolRegion[] planRegions(long plan);

    /** Allocates pool memory owned by Java. */
    NativeMemory allocate(long size, long alignment);

    long sessionCreate(long model, long plan, long poolAddress, long poolSize);

    void sessionFree(long session);

    long sessionNPast(long session);

    /** 0: full attention, 1: memory route. */
    int sessionRoute(long session);

    void sessionPlanRoute(long session, long upcoming);

    /** {sink, window, memory} token counts. */
    long[] sessionPlacement(long session);

    long sessionStateSize(long session);

    void sessionSave(long session, String path);

    void sessionLoad(long session, String path);

    void sessionReset(long session);

    /**
     * Requests (true) or withdraws (false) a cancel of the session's evaluation; the one call
     * that may run while another thread is inside a call on the same session.
     */
    void sessionCancel(long session, boolean cancel);

    /** Evaluates tokens; fills logitsOut (n x n_vocab) when it is not null. */
    void sessionEval(long session, int[] tokens, float[] logitsOut);

    void sessionLastLogits(long session, float[] out);

    // ---- text
    int[] tokenize(long model, String text, boolean addBos, boolean parseSpecial);

    String detokenize(long model, int[] tokens);

    /** Tokens (no BOS) of text that continues a sequence whose last token is prev (-1: none). */
    int[] tokenizeAfter(long model, int prev, String text, boolean parseSpecial);

    /** The bytes a token stands for; special: control tokens as their text. */
    byte[] tokenPiece(long model, int token, boolean special);

    String chatFormat(long model, String format, String[] roles, String[] contents, boolean addGenerationPrompt);

    // ---- generation
    void generateBegin(long session, int[] prompt, int nEvaluated, int greedy, float temperature, int topK, float topP, float minP,
            float repeatPenalty, int repeatLastN, long seed, int maxTokens, String[] stops);

    /** One generation step; the result object may be reused by the next call on this thread. */
    Step generateNext(long session);

    /** A generated piece: whole UTF-8 characters, the sampled token, and why generation ended (0: it goes on). */
    record Step(String text, int token, int done) {}

    // ---- quantization (ei quantize)

    /** Bytes of one row of cols elements of a ggml type; 0 for an unknown type or cols not a multiple of its block. */
    long tensorRowSize(int type, long cols);

    /**
     * Quantizes rows x cols values: the first srcBytes of src (rows of srcType) into the first
     * dstBytes of dst (rows of dstType). importance: null (plain squared error) or cols
     * per-column weights. threads <= 0: one per core.
     */
    void quantizeRows(int dstType, int srcType, byte[] src, long srcBytes, long rows, long cols, float[] importance,
            int threads, byte[] dst, long dstBytes);

    // ---- importance matrix (ei imatrix): a collector the session owns
    /** Starts (or restarts from zero) collecting activation statistics on the session. */
    void imatrixStart(long session, boolean includeOutput);

    /** Matrices watched; 0 when not collecting. */
    int imatrixCount(long session);

    /** Matrix index's GGUF name. */
    String imatrixName(long session, int index);

    /** Matrix index's {input width, rows summed}. */
    long[] imatrixShape(long session, int index);

    /** Matrix index's sums of x_j^2 (sums.length must be at least its input width). */
    void imatrixSums(long session, int index, float[] sums);

    void imatrixStop(long session);

    // ---- activation ranges (ei calibrate): a collector the session owns
    void rangesStart(long session);

    int rangesCount(long session);

    String rangesName(long session, int index);

    /** Site index's {min, max, count, then |x| at each of quantiles}. */
    double[] rangesStats(long session, int index, double[] quantiles);

    void rangesStop(long session);

    // ---- gate fitting (ei fit-gates)
    /**
     * Fits the memory gates for a plan's route (ei_fit_gates): gate 1 scalar, 2 adaptive with
     * steps Gauss-Newton steps; tokens hold the sequences back to back (lengths), weights is
     * null or one per token. Fills gateW, gateB and report (4 doubles per layer and head).
     */
    void fitGates(long plan, int gate, int steps, double ridge, int[] tokens, float[] weights, long[] lengths, float[] gateW,
            float[] gateB, double[] report);

    // ---- devices: the registry and the plan's placement (ei devices)
    /** Every device present, "cpu" first (ei_device_count / ei_device_get). */
    Device[] devices();

    /** The device a plan runs on ("cpu", "opencl:0"). */
    String planDevice(long plan);

    /** The plan's ops that its device cannot run, placed on the CPU. */
    OpPlacement.Fallback[] planFallbacks(long plan);

    /** A graph's ("prefill", "decode", "fold") {ops, ops on the CPU by fallback}. */
    int[] planGraphOps(long plan, String graph);

    // ---------------------------------------------------------------- graph tables (issue 14)

    /** The plan's graph ("prefill", "decode" or "fold") as text: tensor table and ops (ei_plan_describe_graph). */
    String planDescribeGraph(long plan, String graph);

    // ---------------------------------------------------------------- NPU preparation (ei npu-prepare)

    /**
     * Chooses the plan's model's NPU quantization over the calibration tokens and writes it,
     * its report and the quantized graphs into outDir (ei_npu_prepare): weightBits 8 (16a8w)
     * or 4 (16a4w, int4 blocks of block inputs, the keep8bit share of the most sensitive
     * layers kept int8).
     */
    void npuPrepare(long plan, int[] tokens, String outDir, int weightBits, int block, double keep8bit);
}
