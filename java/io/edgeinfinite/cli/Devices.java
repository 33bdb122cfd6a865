package io.edgeinfinite.cli;

import io.edgeinfinite.Device;
import io.edgeinfinite.EdgeInfinite;
import io.edgeinfinite.OpPlacement;
import io.edgeinfinite.Session;
import java.io.PrintStream;
import java.util.List;

/** {@code ei devices}: the devices a scenario can name, as a table or {@code --json}. */
final class Devices {
    private Devices() {}

    static void run(String[] args, PrintStream out) {
        boolean asJson = false;
        for (String s : args) {
            if (!s.equals("--json")) throw new Main.UsageException("devices takes only --json, got '" + s + "'");
            asJson = true;
        }
        List<Device> list = EdgeInfinite.devices();
        if (asJson) {
            out.println(json(list));
            return;
        }
        out.printf("%-10s %-6s %10s %10s %5s  %s%n", "NAME", "KIND", "MEMORY", "MAX ALLOC", "UNITS", "DEVICE / FEATURES");
        for (Device d : list) {
            String who = d.description() + (d.vendor().isEmpty() ? "" : ", " + d.vendor())
                    + (d.driver().isEmpty() ? "" : ", " + d.driver());
            out.printf("%-10s %-6s %10s %10s %5d  %s%n", d.name(), d.kind(), mib(d.memory()), mib(d.maxAlloc()),
                    d.computeUnits(), who);
            out.printf("%-10s %-6s %10s %10s %5s  %s%n", "", "", "", "", "", d.features());
        }
        if (list.size() == 1) out.println("(no OpenCL device: only the CPU is present)");
    }

    static String json(List<Device> list) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < list.size(); i++) {
            Device d = list.get(i);
            sb.append(i == 0 ? "\n" : ",\n").append("  {\"name\": ").append(Eval.str(d.name()))
                    .append(", \"kind\": ").append(Eval.str(d.kind()))
                    .append(", \"description\": ").append(Eval.str(d.description()))
                    .append(", \"vendor\": ").append(Eval.str(d.vendor()))
                    .append(", \"driver\": ").append(Eval.str(d.driver()))
                    .append(", \"features\": ").append(Eval.str(d.features()))
                    .append(", \"memory\": ").append(d.memory())
                    .append(", \"max_alloc\": ").append(d.maxAlloc())
                    .append(", \"compute_units\": ").append(d.computeUnits()).append('}');
        }
        return sb.append(list.isEmpty() ? "]" : "\n]").toString();
    }

    private static String mib(long bytes) {
        return bytes <= 0 ? "-" : (bytes >> 20) + " MiB";
    }

    /** Prints where a session's ops run when not every op is on its device (never silent). */
    static void reportFallback(Session s, PrintStream err) {
        OpPlacement p = s.opPlacement();
        if (!p.allOnDevice()) err.println("[" + p.summary() + "]");
    }
}
