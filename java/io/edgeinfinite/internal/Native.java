package io.edgeinfinite.internal;

import io.edgeinfinite.internal.jni.JniBinding;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
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
 * <p>Which binding: Panama FFM where it exists (a JDK 22 or newer that is not Android), JNI
 * otherwise (Android's ART, JDK 17 to 21). The system property {@code edgeinfinite.binding}
 * ({@code ffm} or {@code jni}) forces one. This class is compiled at --release 17 and must
 * load on Android, so it names the FFM binding only as a string (Class.forName): a direct
 * reference would put java.lang.foreign on the JNI path.
 *
 * <p>Where the runtime library comes from, in order: the system property
 * {@code edgeinfinite.library.path} (a file); else the jar's {@code natives/<platform>/}
 * resource, extracted once into a cache folder named by the library's SHA-256, so a changed
 * library never reuses a stale copy and an unchanged one is not rewritten. The JNI glue
 * (libjniEdgeInfinite.so) comes from {@code edgeinfinite.jni.library.path}, else from beside
 * an overriding runtime library, else from the jar into the runtime's cache folder. On
 * Android both come from the APK through System.loadLibrary.
 */
public final class Native {
    public static final String LIBRARY_PROPERTY = "edgeinfinite.library.path";
    public static final String JNI_LIBRARY_PROPERTY = "edgeinfinite.jni.library.path";
    public static final String CACHE_PROPERTY = "edgeinfinite.cache.dir";
    public static final String BINDING_PROPERTY = "edgeinfinite.binding";

    /** The FFM binding's class, compiled at --release 22 from java-ffm/. */
    private static final String FFM_BINDING = "io.edgeinfinite.internal.ffm.FfmBinding";
    private static final String RUNTIME_FILE = "libedgeinfinite.so";
    private static final String JNI_FILE = "lib" + JniBinding.JNI_LIBRARY + ".so";

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
                    b = checkAbi(open(chooseBinding()));
                    binding = b;
                }
            }
        }
        return b;
    }

    /** Where the loaded runtime library lives (null before the first load, and on Android). */
    public static Path libraryPath() {
        return libraryPath;
    }

    /** "ffm" or "jni": the property's choice, else FFM where this VM has it. */
    static String chooseBinding() {
        String forced = System.getProperty(BINDING_PROPERTY);
        if (forced != null && !forced.isBlank()) {
            String f = forced.trim().toLowerCase(Locale.ROOT);
            if (!f.equals("ffm") && !f.equals("jni")) {
                throw new IllegalArgumentException("-D" + BINDING_PROPERTY + "=" + forced + ": use ffm or jni");
            }
            if (f.equals("ffm") && !ffmAvailable()) {
                throw new UnsupportedOperationException("-D" + BINDING_PROPERTY + "=ffm, but this VM has no FFM (Java "
                        + System.getProperty("java.specification.version") + (isAndroid() ? ", Android" : "")
                        + "; FFM needs a JDK 22 or newer)");
            }
            return f;
        }
        return ffmAvailable() ? "ffm" : "jni";
    }

    /** Whether java.lang.foreign is final here: a JDK 22+ that is not Android's runtime. */
    static boolean ffmAvailable() {
        return !isAndroid() && featureVersion() >= 22;
    }

    static boolean isAndroid() {
        String vendor = System.getProperty("java.vendor", "") + " " + System.getProperty("java.vm.vendor", "");
        return vendor.contains("Android") || "Dalvik".equals(System.getProperty("java.vm.name"));
    }

    /** 8 for "1.8", 17 for "17"; 0 if unreadable (Android reports "0.9"). */
    static int featureVersion() {
        String v = System.getProperty("java.specification.version", "0");
        if (v.startsWith("1.")) v = v.substring(2);
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /**
     * Refuses a runtime library of another ABI version (its structs' layouts differ): possible
     * only when a library is given from outside the jar.
     */
    private static NativeBinding checkAbi(NativeBinding b) {
        int abi = b.abiVersion();
        if (abi != NativeBinding.ABI_VERSION) {
            throw new UnsatisfiedLinkError("the native runtime has ABI version " + abi + ", this library needs "
                    + NativeBinding.ABI_VERSION + " (a libedgeinfinite.so from another build?)");
        }
        return b;
    }

    private static NativeBinding open(String which) {
        if (which.equals("jni") && isAndroid()) return JniBinding.loadFromSystem();
        Path lib = locate();
        NativeBinding b = which.equals("ffm") ? openFfm(lib) : JniBinding.load(lib, locateJni(lib));
        libraryPath = lib;
        return b;
    }

    private static NativeBinding openFfm(Path lib) {
        try {
            return (NativeBinding) Class.forName(FFM_BINDING).getConstructor(Path.class).newInstance(lib);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException) throw (RuntimeException) cause;
            if (cause instanceof Error) throw (Error) cause;
            throw new IllegalStateException("cannot open the FFM binding", cause);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("this jar lacks the FFM binding (" + FFM_BINDING + "); use -D"
                    + BINDING_PROPERTY + "=jni", e);
        }
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
        byte[] bytes = resource(RUNTIME_FILE, LIBRARY_PROPERTY);
        String digest = sha256(bytes);
        return extract(bytes, digest, cacheDir().resolve(digest.substring(0, 16)).resolve(RUNTIME_FILE));
    }

    /** The JNI glue for a runtime library at {@code runtime}. */
    private static Path locateJni(Path runtime) {
        String override = System.getProperty(JNI_LIBRARY_PROPERTY);
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (!Files.isRegularFile(p)) {
                throw new UnsatisfiedLinkError(JNI_LIBRARY_PROPERTY + " points to " + p + ", which is not a file");
            }
            return p.toAbsolutePath();
        }
        Path beside = runtime.resolveSibling(JNI_FILE);
        String runtimeOverride = System.getProperty(LIBRARY_PROPERTY);
        if (runtimeOverride != null && !runtimeOverride.isBlank() && Files.isRegularFile(beside)) return beside;
        byte[] bytes = resource(JNI_FILE, JNI_LIBRARY_PROPERTY);
        // Beside the runtime when it is our own cached copy, so RUNPATH $ORIGIN finds it too.
        Path dir = runtimeOverride == null || runtimeOverride.isBlank() ? runtime.getParent()
                : cacheDir().resolve(sha256(bytes).substring(0, 16));
        return extract(bytes, sha256(bytes), dir.resolve(JNI_FILE));
    }

    private static byte[] resource(String file, String property) {
        String resource = "natives/" + platform() + "/" + file;
        try (InputStream in = Native.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new UnsatisfiedLinkError("no native library for " + platform() + " in this jar (looked for "
                        + resource + "); build it with 'mvn package' or set -D" + property);
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("cannot read " + resource + ": " + e.getMessage());
        }
    }

    private static Path extract(byte[] bytes, String digest, Path target) {
        Path dir = target.getParent();
        try {
            if (Files.isRegularFile(target) && sha256(Files.readAllBytes(target)).equals(digest)) return target;
            Files.createDirectories(dir);
            // Write beside, then move: a concurrent process never loads a half-written file.
            Path tmp = Files.createTempFile(dir, "lib", ".tmp");
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new UnsatisfiedLinkError("cannot extract a native library to " + dir + ": " + e.getMessage());
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
