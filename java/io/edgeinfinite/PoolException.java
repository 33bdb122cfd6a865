package io.edgeinfinite;

/** A buffer pool that does not fit the plan: too small, misaligned, or already released. */
public class PoolException extends EdgeInfiniteException {
    private static final long serialVersionUID = 1L;

    public PoolException(String message) {
        super(Status.POOL, message);
    }
}
