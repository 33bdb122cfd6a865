package io.edgeinfinite;

import java.util.Arrays;

/**
 * A device of the runtime's registry ({@link EdgeInfinite#devices()}): what a scenario names
 * ({@link Scenario.Builder#device(String)}).
 *
 * @param name         what a scenario names: {@code cpu}, {@code opencl:0}
 * @param kind         {@code cpu}, {@code gpu}, {@code accelerator} or {@code other}
 * @param description  the device's own name
 * @param vendor       its vendor ("" when unknown)
 * @param driver       its platform and driver version ("" for the CPU)
 * @param features     space-separated capabilities: the instruction sets the CPU kernels
 *                     picked ({@code avx2 fma f16c}); for OpenCL {@code fp16}, {@code subgroups},
 *                     {@code unified_memory}, {@code qcom} where present, {@code opencl_c=1.2}
 *                     and the kernel variant picked ({@code kernels=portable}, {@code fp16},
 *                     {@code subgroups} or {@code adreno})
 * @param memory       bytes (0: unknown)
 * @param maxAlloc     largest single buffer in bytes (0: unknown or unlimited)
 * @param computeUnits cores or compute units
 */
public record Device(String name, String kind, String description, String vendor, String driver, String features,
        long memory, long maxAlloc, int computeUnits) {

    /** Whether features lists f (a whole word). */
    public boolean hasFeature(String f) {
        return Arrays.asList(features.split(" ")).contains(f);
    }
}
