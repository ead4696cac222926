package dev.mooncakej.kvtransfer.spi;

/**
 * Whether a peer's WRITE into [offset, offset + length) of this segment may land now (see the transfer
 * engine's {@code guardWrites}). {@code writer} is the segment name the peer proved in its handshake,
 * so a guard can permit a range to its claimant only: then a stalled writer's groups can touch only
 * its own ranges, and the fences of other writers need not wait for them.
 */
@FunctionalInterface
public interface WriteGuard {
    boolean permits(String writer, long offset, long length);
}
