package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Synth's own f32 -> f16 conversion (it runs at Java 17) against the JDK's (Java 20+). */
class ToHalfTest {
    private static void same(float f) {
        short want = Float.floatToFloat16(f), got = Synth.toHalf(f);
        assertEquals(want, got, () -> String.format("%s (0x%08x): want 0x%04x, got 0x%04x", f,
                Float.floatToRawIntBits(f), want & 0xffff, got & 0xffff));
    }

    @Test
    void edgeCases() {
        float[] cases = {0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, -65520f, 1e6f, Float.MAX_VALUE,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, Float.MIN_NORMAL,
            0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1.4p-24f, 0x1.cp-24f, 0x1p-26f,
            0x1.ffcp-15f, 0x1.ffep-15f, 1.00048828125f, 1.0009765625f, 1.00146484375f, 2049f, 2051f};
        for (float f : cases) same(f);
        short nan = Synth.toHalf(Float.NaN);
        assertTrue((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff) != 0, "NaN stays NaN");
    }

    @Test
    void everyThousandthBitPattern() {
        for (long bits = 0; bits <= 0xffffffffL; bits += 997) {
            float f = Float.intBitsToFloat((int) bits);
            if (!Float.isNaN(f)) same(f);
        }
    }
}
