package io.edgeinfinite;

/** Why a generation ended. */
public enum StopReason {
    /** Still going (never the reason of a finished generation). */
    NONE,
    /** The model emitted an end-of-generation token. */
    EOS,
    /** A stop string appeared in the output. */
    STOP_STRING,
    /** The requested number of tokens was reached. */
    MAX_TOKENS,
    /** The scenario's context is full. */
    CONTEXT_FULL,
    /** The caller cancelled it. */
    CANCELLED;

    static StopReason fromCode(int code) {
        StopReason[] all = values();
        return code >= 0 && code < CANCELLED.ordinal() ? all[code] : NONE;
    }
}
