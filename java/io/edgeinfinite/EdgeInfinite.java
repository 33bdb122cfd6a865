package io.edgeinfinite;

import io.edgeinfinite.internal.Native;
import java.util.List;

/** Facts about the runtime this process loaded. */
public final class EdgeInfinite {
    private EdgeInfinite() {}

    /** Version of the native runtime. */
    public static String version() {
        return Native.binding().version();
    }

    /** How Java reaches native code: "ffm" (Panama) or "jni". */
    public static String binding() {
        return Native.binding().name();
    }

    /** CPU features the runtime detected and uses, e.g. "avx2 fma f16c". */
    public static String cpuFeatures() {
        return Native.binding().cpuFeatures();
    }

    /**
     * The devices a scenario can name ({@link Scenario.Builder#device(String)}): {@code cpu}
     * always, first; then {@code opencl:N} for each OpenCL device where an OpenCL platform loads
     * (listed once per process).
     */
    public static List<Device> devices() {
        return List.of(Native.binding().devices());
    }

    /** The platform folder of this JVM, e.g. linux-x86_64. */
    public static String platform() {
        return Native.platform();
    }
}
