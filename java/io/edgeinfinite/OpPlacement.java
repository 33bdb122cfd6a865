package io.edgeinfinite;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Where a session's graph ops run ({@link Session#opPlacement()}): on its scenario's device,
 * except the ops that device cannot run, which the planner placed on the CPU, each with the
 * device's reason. Never silent: {@code ei run} and {@code ei bench} print it when not every
 * op is on the device.
 *
 * @param device    the device's registry name ({@code cpu}, {@code opencl:0})
 * @param totalOps  ops of the prefill, decode and fold graphs together
 * @param fallbacks the ops placed on the CPU
 */
public record OpPlacement(String device, int totalOps, List<Fallback> fallbacks) {

    /**
     * An op its device cannot run, placed on the CPU.
     *
     * @param graph   {@code prefill}, {@code decode} or {@code fold}
     * @param opIndex its position in the graph
     * @param op      its kind ({@code mat_mul}...)
     * @param layer   its layer, -1 for none (the output head)
     * @param reason  why the device cannot run it
     */
    public record Fallback(String graph, int opIndex, String op, int layer, String reason) {}

    public OpPlacement {
        fallbacks = List.copyOf(fallbacks);
    }

    /** Whether every op runs on the device. */
    public boolean allOnDevice() {
        return fallbacks.isEmpty();
    }

    /** For people: "all 125 ops on opencl:0", or the count on the CPU and one line per (op, reason). */
    public String summary() {
        if (fallbacks.isEmpty()) return "all " + totalOps + " ops on " + device;
        StringBuilder sb = new StringBuilder();
        sb.append(fallbacks.size()).append(" of ").append(totalOps).append(" ops run on the CPU, not ").append(device)
                .append(':');
        Map<String, Integer> groups = new java.util.LinkedHashMap<>();
        for (Fallback f : fallbacks) groups.merge(f.op() + ": " + f.reason(), 1, Integer::sum);
        List<String> lines = new ArrayList<>();
        groups.forEach((k, n) -> lines.add("\n  " + n + " x " + k));
        lines.forEach(sb::append);
        return sb.toString();
    }
}
