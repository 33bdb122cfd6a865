package io.edgeinfinite;

/** An argument the runtime refused: a token id out of range, a bad setting. */
public class InvalidArgumentException extends EdgeInfiniteException {
    private static final long serialVersionUID = 1L;

    public InvalidArgumentException(String message) {
        super(Status.INVALID_ARGUMENT, message);
    }
}
