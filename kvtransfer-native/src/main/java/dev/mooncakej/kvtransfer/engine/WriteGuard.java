package dev.mooncakej.kvtransfer.engine;

/**
 * Whether a peer's WRITE into [offset, offset + length) of this segment may land now (see {@link
 * TransferEngine#guardWrites}).
 */
@FunctionalInterface
public interface WriteGuard {
    boolean permits(long offset, long length);
}
