package dev.mooncakej.kvtransfer.spi;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;

/**
 * One way of moving slices to and from a peer's segment (the transport SPI). A transport is opened by
 * its {@link TransportProvider}, found by name in {@link Transports}; the transfer engine negotiates one
 * per peer in the configured order of preference. Transports report every slice back through the
 * {@link Completion} exactly once (done, or failed with a reason); the engine retries, downgrades and
 * times out. Everything past {@link #submit} has a default, so a simple transport is three methods.
 */
public interface Transport extends AutoCloseable {
    /** Its name, as in {@code transports} ({@code tcp}, {@code shm}, {@code rdma}, ...). */
    String name();

    /** Whether this transport can reach that peer from here (both sides able, same host for shm, ...). */
    boolean canReach(SegmentDescriptor local, SegmentDescriptor peer);

    /** Starts moving the slices (all for the same peer); returns at once or after copying. */
    void submit(Peer peer, List<? extends Slice> slices, Completion completion);

    /**
     * Slice size for a request of this length (network transports stripe fixed slices; a memory copy wants few large
     * ones).
     */
    default long sliceBytes(long requestLength, TransferConfig config) {
        return config.sliceBytes();
    }

    /** Drops cached state about a peer (its segment went away or changed). */
    default void forget(String peer) {}

    /**
     * Makes freshly registered memory reachable by peers through this transport; returns the keys peers
     * need for it, one per device (they go into the descriptor; empty: none needed).
     */
    default List<Integer> register(MemorySegment buffer) {
        return List.of();
    }

    /** Makes a buffer unreachable again: its keys stop working for every peer. */
    default void deregister(MemorySegment buffer) {}

    /** The devices this transport publishes in the descriptor (empty: none). */
    default List<SegmentDescriptor.Device> devices() {
        return List.of();
    }

    /** Memory location to [preferred devices, secondary devices], for the descriptor (null: none). */
    default Map<String, List<List<String>>> topology() {
        return null;
    }

    /** Whether a peer's transport of the same name must handshake with this one first ({@link #acceptHandshake}). */
    default boolean acceptsHandshakes() {
        return false;
    }

    /** Answers a peer's handshake request (sent through {@link TransportContext#handshake()}). */
    default byte[] acceptHandshake(byte[] request) {
        throw new UnsupportedOperationException(name() + " takes no handshakes");
    }

    /** One of its counters by name, for the engine's metrics (0 for a name it does not keep). */
    default long counter(String counter) {
        return 0;
    }

    @Override
    default void close() {}

    /** How a transport reports each slice back, exactly once. */
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
