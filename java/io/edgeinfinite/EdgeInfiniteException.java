package io.edgeinfinite;

/**
 * A failure reported by the native runtime. It carries the runtime's status and message
 * (which names the field, byte offset, tensor or setting at fault). Subclasses let callers
 * catch the kinds they can act on.
 */
public class EdgeInfiniteException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final Status status;

    public EdgeInfiniteException(Status status, String message) {
        super(message);
        this.status = status;
    }

    /** The native status behind this exception. */
    public Status status() {
        return status;
    }

    /** Builds the most specific exception for a native status. */
    public static EdgeInfiniteException of(Status status, String message) {
        return switch (status) {
            case FORMAT -> new ModelFormatException(message);
            case UNSUPPORTED -> new UnsupportedModelException(message);
            case POOL -> new PoolException(message);
            case INVALID_ARGUMENT -> new InvalidArgumentException(message);
            case CANCELLED -> new CancelledException(message);
            default -> new EdgeInfiniteException(status, message);
        };
    }

    /** Native status codes, as in edgeinfinite.h. */
    public enum Status {
        OK, INVALID_ARGUMENT, IO, FORMAT, UNSUPPORTED, OUT_OF_MEMORY, POOL, STATE, CANCELLED, INTERNAL;

        public static Status fromCode(int code) {
            Status[] all = values();
            return code >= 0 && code < all.length ? all[code] : INTERNAL;
        }
    }
}
