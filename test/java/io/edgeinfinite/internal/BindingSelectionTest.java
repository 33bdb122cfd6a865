package io.edgeinfinite.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.edgeinfinite.EdgeInfinite;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Which binding a VM gets, and that the suite really runs under the one the build asked for. */
class BindingSelectionTest {
    @Test
    void suiteRunsUnderTheRequestedBinding() {
        String requested = System.getProperty(Native.BINDING_PROPERTY);
        String expected = requested == null ? "ffm" : requested;  // the tests run on a JDK >= 22
        assertEquals(expected, EdgeInfinite.binding());
        assertEquals(expected.equals("ffm") ? "io.edgeinfinite.internal.ffm.FfmBinding"
                : "io.edgeinfinite.internal.jni.JniBinding", Native.binding().getClass().getName());
        assertEquals(3, Native.binding().abiVersion());
    }

    @Test
    void ffmWhereItExistsJniElsewhere() {
        withProperties(Map.of(), () -> assertEquals("ffm", Native.chooseBinding()));
        withProperties(Map.of("java.specification.version", "21"), () -> assertEquals("jni", Native.chooseBinding()));
        withProperties(Map.of("java.specification.version", "1.8"), () -> assertEquals("jni", Native.chooseBinding()));
        withProperties(Map.of("java.specification.version", "0.9", "java.vendor", "The Android Project",
                "java.vm.name", "Dalvik"), () -> assertEquals("jni", Native.chooseBinding()));
        // Android's runtime is not FFM-capable whatever version it claims.
        withProperties(Map.of("java.specification.version", "25", "java.vm.vendor", "The Android Project"),
                () -> assertEquals("jni", Native.chooseBinding()));
    }

    @Test
    void propertyForcesOne() {
        withProperties(Map.of(Native.BINDING_PROPERTY, "jni"), () -> assertEquals("jni", Native.chooseBinding()));
        withProperties(Map.of(Native.BINDING_PROPERTY, " FFM "), () -> assertEquals("ffm", Native.chooseBinding()));
        withProperties(Map.of(Native.BINDING_PROPERTY, "panama"),
                () -> assertThrows(IllegalArgumentException.class, Native::chooseBinding));
        withProperties(Map.of(Native.BINDING_PROPERTY, "ffm", "java.specification.version", "17"),
                () -> assertThrows(UnsupportedOperationException.class, Native::chooseBinding));
    }

    /** Runs r with the given system properties set and edgeinfinite.binding cleared unless given; restores all. */
    private static void withProperties(Map<String, String> props, Runnable r) {
        Map<String, String> all = new HashMap<>(props);
        all.putIfAbsent(Native.BINDING_PROPERTY, null);
        Map<String, String> saved = new HashMap<>();
        for (String k : all.keySet()) saved.put(k, System.getProperty(k));
        try {
            all.forEach(BindingSelectionTest::set);
            r.run();
        } finally {
            saved.forEach(BindingSelectionTest::set);
        }
    }

    private static void set(String key, String value) {
        if (value == null) System.clearProperty(key);
        else System.setProperty(key, value);
    }
}
