package dev.mooncakej.kvtransfer.engine;

import java.util.List;

/**
 * One way of moving slices to and from a peer's segment. Transports report every slice back through
 * the {@link Completion} exactly once (done, or failed with a reason); the engine retries, downgrades
 * and times out.
 */
interface Transport extends AutoCloseable {
    String name();

    /** Whether this transport can reach that peer from here (both sides able, same host for shm, ...). */
    boolean canReach(SegmentDescriptor local, SegmentDescriptor peer);

    /** Starts moving the slices (all for the same peer); returns at once or after copying. */
    void submit(Peer peer, List<Slice> slices, Completion completion);

    /**
     * Slice size for a request of this length (network transports stripe fixed slices; a memory copy wants few large
     * ones).
     */
    default long sliceBytes(long requestLength, TransferConfig config) {
        return config.sliceBytes();
    }

    /** Drops cached state about a peer (its segment went away or changed). */
    default void forget(String peer) {}

    @Override
    default void close() {}

    interface Completion {
        void done(Slice s);

        /**
         * @param transportError the path is at fault (retry elsewhere, count towards downgrade); false: the request
         * itself is bad
         */
        void failed(Slice s, String reason, boolean transportError);

        /**
         * A slice swept up by another failure (flushed from a queue pair that broke, queued on an
         * endpoint that closed): retried elsewhere like a transport error, but not counted towards a
         * downgrade, so one broken path with much in flight does not look like many errors.
         */
        default void swept(Slice s, String reason) {
            failed(s, reason, true);
        }
    }
}
