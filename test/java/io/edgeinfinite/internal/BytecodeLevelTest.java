package io.edgeinfinite.internal;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The Android rule, checked on the bytecode: every class outside the FFM binding's package
 * (the public API, the CLI, the loader, the JNI binding) is at most class-file version 61
 * (Java 17) and names neither java.lang.foreign nor the FFM binding's package anywhere in
 * its constant pool (class references, descriptors, signatures, string constants such as
 * a Class.forName argument). Native reaches the FFM binding by its dotted name, which is
 * the one string allowed.
 */
class BytecodeLevelTest {
    private static final String FFM_PACKAGE = "io/edgeinfinite/internal/ffm/";
    private static final int JAVA_17 = 61;
    private static final String[] FORBIDDEN = {"java/lang/foreign", "java.lang.foreign", FFM_PACKAGE};

    @Test
    void jniPathIsJava17AndFreeOfFfm() throws IOException {
        Path classes = classesDir();
        List<String> problems = new ArrayList<>();
        int checked = 0, ffmClasses = 0;
        boolean ffmSeesForeign = false;
        try (Stream<Path> files = Files.walk(classes)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".class"))::iterator) {
                String name = classes.relativize(f).toString().replace('\\', '/');
                ClassFile cf = ClassFile.read(Files.readAllBytes(f));
                if (name.startsWith(FFM_PACKAGE)) {
                    ffmClasses++;
                    ffmSeesForeign |= cf.strings.stream().anyMatch(s -> s.contains("java/lang/foreign"));
                    continue;
                }
                checked++;
                if (cf.major > JAVA_17) {
                    problems.add(name + ": class-file version " + cf.major + " (Java " + (cf.major - 44) + ") > 61 (Java 17)");
                }
                for (String s : cf.strings) {
                    for (String bad : FORBIDDEN) {
                        if (s.contains(bad)) problems.add(name + ": constant pool names \"" + s + "\"");
                    }
                }
            }
        }
        assertTrue(checked > 20, "too few release-17 classes under " + classes + ": " + checked);
        // The scan must be able to see what it forbids: the FFM binding itself is full of it.
        assertTrue(ffmClasses > 0 && ffmSeesForeign, "no FFM binding classes referencing java.lang.foreign under "
                + classes + " (the check would be blind)");
        if (!problems.isEmpty()) {
            fail("FFM leaks into the JNI (Android, JDK 17) path:\n  " + String.join("\n  ", problems));
        }
    }

    @Test
    void readerSeesEveryKindOfReference() throws IOException {
        // This very class: major version of the test release, and its own strings.
        Path self = classesDirOf(BytecodeLevelTest.class).resolve("io/edgeinfinite/internal/BytecodeLevelTest.class");
        ClassFile cf = ClassFile.read(Files.readAllBytes(self));
        assertTrue(cf.major >= JAVA_17);
        assertTrue(cf.strings.contains("java.lang.foreign"), "string constants are read");
        assertTrue(cf.strings.contains("io/edgeinfinite/internal/BytecodeLevelTest"), "class names are read");
    }

    private static Path classesDir() {
        String dir = System.getProperty("edgeinfinite.classes.dir");
        return dir != null ? Path.of(dir) : classesDirOf(Native.class);
    }

    private static Path classesDirOf(Class<?> c) {
        try {
            return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The parts of a class file (JVMS §4.1, §4.4) this check needs: the version and every UTF-8 constant. */
    static final class ClassFile {
        final int major;
        final List<String> strings = new ArrayList<>();

        private ClassFile(int major) {
            this.major = major;
        }

        static ClassFile read(byte[] bytes) {
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
                if (in.readInt() != 0xCAFEBABE) throw new IOException("not a class file");
                in.readUnsignedShort();  // minor
                ClassFile cf = new ClassFile(in.readUnsignedShort());
                int count = in.readUnsignedShort();
                for (int i = 1; i < count; i++) {
                    int tag = in.readUnsignedByte();
                    switch (tag) {
                        case 1 -> cf.strings.add(in.readUTF());  // u2 length + modified UTF-8, as readUTF reads it
                        case 7, 8, 16, 19, 20 -> in.skipNBytes(2);  // Class, String, MethodType, Module, Package
                        case 15 -> in.skipNBytes(3);  // MethodHandle
                        case 3, 4, 9, 10, 11, 12, 17, 18 -> in.skipNBytes(4);
                        case 5, 6 -> {  // Long, Double: 8 bytes, two slots
                            in.skipNBytes(8);
                            i++;
                        }
                        default -> throw new IOException("constant pool tag " + tag + " at entry " + i);
                    }
                }
                return cf;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    // Referenced so that readerSeesEveryKindOfReference finds it among this class's strings.
    @SuppressWarnings("unused")
    private static final String PROBE = "java.lang.foreign";
}
