package io.edgeinfinite;

/**
 * A named region of a session's buffer pool, at a fixed offset planned before the first token.
 *
 * @param name   region name, e.g. {@code kv.k} or {@code act_q}
 * @param offset byte offset from the pool's base
 * @param size   size in bytes
 */
public record PoolRegion(String name, long offset, long size) {}
