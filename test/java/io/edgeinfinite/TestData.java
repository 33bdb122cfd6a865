package io.edgeinfinite;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/** Paths into ../shared/testdata (the build passes its location as a system property). */
public final class TestData {
    private TestData() {}

    public static Path root() {
        return Path.of(System.getProperty("edgeinfinite.testdata", "../shared/testdata"));
    }

    public static Path model(String name) {
        return root().resolve("models").resolve(name);
    }

    public static Path vocab(String name) {
        return root().resolve("vocab").resolve(name);
    }

    /** Every GGUF file under models/ and vocab/. */
    public static List<Path> allGguf() {
        try (Stream<Path> s = Stream.concat(Files.list(root().resolve("models")), Files.list(root().resolve("vocab")))) {
            return s.filter(p -> p.toString().endsWith(".gguf")).sorted().toList();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
