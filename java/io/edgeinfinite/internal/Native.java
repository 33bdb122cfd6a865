package io.edgeinfinite.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;

/**
 * Finds the native library and opens the binding to it, once per process.
 *
 * <p>Where the library comes from, in order: the system property
 * {@code edgeinfinite.library.path} (a file); else the jar's {@code natives/<platform>/}
 * resource, extracted once into a cache folder named by the library's SHA-256, so a changed
 * library never reuses a stale copy and an unchanged one is not rewritten.
 */
public final class Native {
    public static final String LIBRARY_PROPERTY = "edgeinfinite.library.path";
    public static final String CACHE_PROPERTY = "edgeinfinite.cache.dir";

    private static volatile NativeBinding binding;
    private static volatile Path libraryPath;

    private Native() {}

    /** The binding, loading the library on first use. */
    public static NativeBinding binding() {
        NativeBinding b = binding;
        if (b == null) {
            synchronized (Native.class) {
                b = binding;
                if (b == null) {
                    Path lib = locate();
                    b = new FfmBinding(lib);
                    libraryPath = lib;
                    binding = b;
                }
            }
        }
        return b;
    }

    /** Where the loaded library lives (null before the first load). */
    public static Path libraryPath() {
        return libraryPath;
    }

    /** The platform folder name of this JVM, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.contains("linux") ? "linux" : os.contains("mac") ? "macos" : os.contains("win") ? "windows" : os;
        String a = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return o + "-" + a;
    }

    private static Path locate() {
        String override = System.getProperty(LIBRARY_PROPERTY);
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (!Files.isRegularFile(p)) {
                throw new UnsatisfiedLinkError(LIBRARY_PROPERTY + " points to " + p + ", which is not a file");
            }
            return p.toAbsolutePath();
        }
        String resource = "natives/" + platform() + "/libedgeinfinite.so";
        byte[] bytes;
        try (InputStream in = Native.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("no native library for " + platform() + " in this jar (looked for "
                        + resource + "); build it with 'mvn package' or set -D" + LIBRARY_PROPERTY);
            }
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("cannot read " + resource + ": " + e.getMessage());
        }
        return extract(bytes);
    }

    private static Path extract(byte[] bytes) {
        String digest = sha256(bytes);
        Path dir = cacheDir().resolve(digest.substring(0, 16));
        Path target = dir.resolve("libedgeinfinite.so");
        try {
            if (Files.isRegularFile(target) && sha256(Files.readAllBytes(target)).equals(digest)) return target;
            Files.createDirectories(dir);
            // Write beside, then move: a concurrent process never loads a half-written file.
            Path tmp = Files.createTempFile(dir, "lib", ".tmp");
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("cannot extract the native library to " + dir + ": " + e.getMessage());
        }
    }

    private static Path cacheDir() {
        String override = System.getProperty(CACHE_PROPERTY);
        if (override != null && !override.isBlank()) return Path.of(override);
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank()) return Path.of(xdg, "edgeinfinite");
        return Path.of(System.getProperty("user.home"), ".cache", "edgeinfinite");
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
