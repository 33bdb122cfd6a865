package io.edgeinfinite;

/** A malformed, truncated or inconsistent model file (GGUF). */
public class ModelFormatException extends EdgeInfiniteException {
    private static final long serialVersionUID = 1L;

    public ModelFormatException(String message) {
        super(Status.FORMAT, message);
    }
}
