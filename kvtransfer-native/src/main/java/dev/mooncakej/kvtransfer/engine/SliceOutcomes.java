package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.Transport;
import java.util.List;
import java.util.function.IntSupplier;

/**
 * What the engine does with each slice a transport reports: done counts towards its request; a bad
 * request is INVALID at once; a transport error counts towards the peer's downgrade and is retried on
 * another path until the retry limit; a slice swept up by another's failure is retried without
 * counting (up to {@value #MAX_SWEEPS} times).
 */
final class SliceOutcomes implements Transport.Completion {
    /** Times one slice may be swept up by other requests' failures before it fails itself. */
    static final int MAX_SWEEPS = 32;

    /** Moves a peer to its next transport once it had enough errors in a row on the one it used. */
    @FunctionalInterface
    interface Downgrade {
        void after(EnginePeer peer, Transport used, String reason);
    }

    private final Downgrade downgrade;
    private final IntSupplier retryLimit;

    SliceOutcomes(Downgrade downgrade, IntSupplier retryLimit) {
        this.downgrade = downgrade;
        this.retryLimit = retryLimit;
    }

    @Override
    public void done(Slice slice) {
        BatchSlice s = (BatchSlice) slice; // the engine's slices are the only ones it hands to transports
        EnginePeer peer = s.enginePeer();
        if (peer.consecutiveErrors.get() != 0) peer.consecutiveErrors.set(0); // no store per slice on the line
        s.batch.sliceDone(s.request, s.length());
    }

    @Override
    public void failed(Slice slice, String reason, boolean transportError) {
        BatchSlice s = (BatchSlice) slice;
        if (!transportError) {
            s.batch.finish(s.request, TransferBatch.Status.INVALID, reason);
            return;
        }
        EnginePeer peer = s.enginePeer();
        downgrade.after(peer, peer.transport, reason);
        retry(s, peer, reason);
    }

    @Override
    public void swept(Slice slice, String reason) {
        BatchSlice s = (BatchSlice) slice;
        if (s.batch.isFinal(s.request)) return;
        if (++s.swept > MAX_SWEEPS) {
            s.batch.finish(s.request, TransferBatch.Status.FAILED, reason + " (swept up " + s.swept + " times)");
            return;
        }
        s.attempt++; // another path, but not one of the request's own retries
        s.enginePeer().transport.submit(s.peer, List.of(s), this);
    }

    private void retry(BatchSlice s, EnginePeer peer, String reason) {
        if (s.batch.isFinal(s.request)) return;
        if (s.attempt - s.swept >= retryLimit.getAsInt()) {
            s.batch.finish(
                    s.request, TransferBatch.Status.FAILED, reason + " (after " + (s.attempt + 1) + " attempts)");
            return;
        }
        s.attempt++;
        peer.transport.submit(peer, List.of(s), this);
    }
}
