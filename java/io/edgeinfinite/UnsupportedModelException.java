package io.edgeinfinite;

/** A model, tensor type, architecture, template or backend this runtime does not support. */
public class UnsupportedModelException extends EdgeInfiniteException {
    private static final long serialVersionUID = 1L;

    public UnsupportedModelException(String message) {
        super(Status.UNSUPPORTED, message);
    }
}
