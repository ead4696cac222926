package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.Slice;
import java.lang.foreign.MemorySegment;

/** A slice as the engine makes it: which request of which batch it belongs to, and how often it was swept up. */
final class BatchSlice extends Slice {
    final TransferBatch batch;
    final int request;
    /** Of the attempts, how many followed another request's failure (a flush) rather than its own. */
    int swept;

    BatchSlice(
            TransferBatch batch,
            int request,
            boolean write,
            MemorySegment local,
            long remoteOffset,
            String location,
            EnginePeer peer) {
        super(write, local, remoteOffset, location, peer);
        this.batch = batch;
        this.request = request;
    }

    EnginePeer enginePeer() {
        return (EnginePeer) peer;
    }
}
