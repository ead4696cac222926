package dev.mooncakej.kvtransfer;

import java.lang.foreign.MemorySegment;

/** The receiving side's view of where incoming KV may go (a decode worker's reservations). */
public interface KvSinkRegistry {
    /**
     * Memory to write {@code length} bytes of layer {@code layer} of block {@code blockIndex} of the
     * request into, or null when the request is unknown or the target is out of its reservation.
     */
    MemorySegment target(long requestId, int blockIndex, int layer, long length);

    /** The sender says the first {@code tokens} tokens' KV has arrived; returns a status byte of {@link KvFrame}. */
    byte commit(long requestId, long tokens);
}
