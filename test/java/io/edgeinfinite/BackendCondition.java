package io.edgeinfinite;

import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * When the suite runs on a device backend (system property {@code edgeinfinite.backend}, set by
 * {@code -Dedgeinfinite.test.backend=opencl}), every test is skipped, with the runtime's own
 * reason, where that backend does not load here (no OpenCL library, platform or device). On the
 * CPU it never skips. Registered for every test class through test/resources (autodetection).
 */
public final class BackendCondition implements ExecutionCondition {
    private static volatile ConditionEvaluationResult result;

    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        ConditionEvaluationResult r = result;
        if (r == null) {
            synchronized (BackendCondition.class) {
                if (result == null) result = probe();
                r = result;
            }
        }
        return r;
    }

    /** Whether a session on the tiny model starts on the backend. */
    static ConditionEvaluationResult probe() {
        String backend = Scenario.defaultDevice();
        if (backend.equals("cpu")) return ConditionEvaluationResult.enabled("cpu backend");
        try (Model m = Model.load(TestData.model("tiny-llama-q8_0.gguf"));
                Session s = m.newSession(Scenario.fullAttention(32).toBuilder().segmentLength(16).build())) {
            return ConditionEvaluationResult.enabled("backend " + backend + " loads");
        } catch (UnsupportedModelException e) {
            return ConditionEvaluationResult.disabled("backend " + backend + " is not available here: " + e.getMessage());
        }
    }
}
