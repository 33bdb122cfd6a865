package io.edgeinfinite.bench;

import io.edgeinfinite.cli.Synth;
import io.edgeinfinite.internal.Native;
import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.NativeMemory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What one call across the boundary costs, FFM against JNI. Each binding runs in its own
 * forked JVM (the binding is chosen once per process), with the default scenario (L 128,
 * S 64, W 2048) and one thread.
 *
 * <ul>
 *   <li>{@code emptyCall}: ei_abi_version, a call that does nothing: the fixed cost.
 *   <li>{@code lastLogits}: ei_session_last_logits into a float[151936]: the data a decode
 *       step of Qwen2.5 hands back (593 KiB of logits) with no native work but a memcpy. The
 *       model is synthetic (Qwen2.5's vocabulary, a one-layer 64-wide body), written once
 *       into target/bench/.
 *   <li>{@code decodeStep}: ei_session_reset + ei_session_eval of one token on the tiny test
 *       model (tiny-llama-q8_0): the forward pass dominates; the bindings differ by the call.
 *   <li>{@code poolAllocFree}: allocate (zeroed) and free a pool of the tiny model's plan.
 * </ul>
 *
 * Run: {@code mvn -B -Pbench verify -DskipTests} (README, "Benchmarks").
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BindingBench {
    @Param({"ffm", "jni"})
    public String binding;

    private NativeBinding nb;
    private long model, plan, session, poolSize, poolAlignment;
    private NativeMemory pool;
    private long bigModel, bigPlan, bigSession;
    private NativeMemory bigPool;
    private float[] logits;
    private final int[] oneToken = {1};

    @Setup(Level.Trial)
    public void setUp() {
        System.setProperty(Native.BINDING_PROPERTY, binding);
        nb = Native.binding();
        if (!nb.name().equals(binding)) throw new IllegalStateException("got " + nb.name() + ", wanted " + binding);
        Path testdata = Path.of(System.getProperty("edgeinfinite.testdata", "../shared/testdata"));
        model = nb.modelLoad(testdata.resolve("models/tiny-llama-q8_0.gguf").toString());
        plan = nb.planCreate(model, -1, -1, -1, -1, -1, -1, 1, 0, "cpu", 0, 0);
        poolSize = nb.planPoolSize(plan);
        poolAlignment = nb.planPoolAlignment(plan);
        pool = nb.allocate(poolSize, poolAlignment);
        session = nb.sessionCreate(model, plan, pool.address(), pool.size());
        nb.sessionEval(session, oneToken, null);

        bigModel = nb.modelLoad(qwenVocabModel().toString());
        bigPlan = nb.planCreate(bigModel, -1, -1, -1, -1, -1, -1, 1, 0, "cpu", 0, 0);
        bigPool = nb.allocate(nb.planPoolSize(bigPlan), nb.planPoolAlignment(bigPlan));
        bigSession = nb.sessionCreate(bigModel, bigPlan, bigPool.address(), bigPool.size());
        logits = new float[Math.toIntExact(nb.modelParam(bigModel, "n_vocab"))];
        nb.sessionEval(bigSession, oneToken, null);
        System.out.printf("%n[%s] tiny model pool %d bytes (alignment %d); logits of %d floats%n", binding, poolSize,
                poolAlignment, logits.length);
    }

    /** A model with Qwen2.5's vocabulary and a minimal body, written once. */
    private static Path qwenVocabModel() {
        Path dir = Path.of(System.getProperty("edgeinfinite.bench.dir", "target/bench"));
        Path file = dir.resolve("qwen-vocab-64x1-q8_0.gguf");
        try {
            if (!Files.isRegularFile(file)) {
                Files.createDirectories(dir);
                Path tmp = Files.createTempFile(dir, "model", ".tmp");
                Synth.write(new Synth.Shape("qwen2", 64, 1, 2, 1, 128, 151936, true, 1e6f, 4096), 8, 1, Float.NaN, tmp);
                Files.move(tmp, file);
            }
            return file;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        nb.sessionFree(bigSession);
        bigPool.close();
        nb.planFree(bigPlan);
        nb.modelFree(bigModel);
        nb.sessionFree(session);
        pool.close();
        nb.planFree(plan);
        nb.modelFree(model);
    }

    @Benchmark
    public int emptyCall() {
        return nb.abiVersion();
    }

    @Benchmark
    public float[] lastLogits() {
        nb.sessionLastLogits(bigSession, logits);
        return logits;
    }

    @Benchmark
    public long decodeStep() {
        nb.sessionReset(session);
        nb.sessionEval(session, oneToken, null);
        return session;
    }

    @Benchmark
    public long poolAllocFree() {
        try (NativeMemory m = nb.allocate(poolSize, poolAlignment)) {
            return m.address();
        }
    }
}
