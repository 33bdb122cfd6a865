package io.edgeinfinite;

import java.io.IOException;
import java.util.Map;

/** The reference manifest's cases for tests in other packages (ei quantize's). */
public final class ReferenceLogitsTestAccess {
    private ReferenceLogitsTestAccess() {}

    public static Map<String, Object> caseById(String id) throws IOException {
        return ReferenceLogitsTest.caseById(id);
    }

    public static int[] ints(Object list) {
        return ReferenceLogitsTest.ints(list);
    }

    /** The case's reference logits, [tokens x n_vocab]. */
    public static float[] logits(Map<String, Object> c) throws IOException {
        return ReferenceLogitsTest.readF32(ReferenceLogitsTest.dir().resolve((String) c.get("logits")));
    }
}
