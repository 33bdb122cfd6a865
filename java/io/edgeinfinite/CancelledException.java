package io.edgeinfinite;

/**
 * An evaluation stopped by {@link Session#cancel()} (or by closing the session or its model)
 * before its next segment. The segments already run stay in the session:
 * {@link Session#position()} tells how far it got.
 */
public class CancelledException extends EdgeInfiniteException {
    private static final long serialVersionUID = 1L;

    public CancelledException(String message) {
        super(Status.CANCELLED, message);
    }
}
