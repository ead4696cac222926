package dev.mooncakej.kvtransfer.engine;

import java.lang.foreign.MemorySegment;

/**
 * One piece of a request as a transport moves it: {@code local} is this process's memory, the remote
 * side is {@code remoteOffset} in the peer's segment. A slice that fails is retried on another path
 * ({@link #attempt} counts them) until the engine's retry limit.
 */
final class Slice {
    final TransferBatch batch;
    final int request;
    final boolean write;
    final MemorySegment local;
    final long remoteOffset;
    final String location;
    final Peer peer;
    int attempt;
    /** Of the attempts, how many followed another request's failure (a flush) rather than its own. */
    int swept;

    int path;

    Slice(
            TransferBatch batch,
            int request,
            boolean write,
            MemorySegment local,
            long remoteOffset,
            String location,
            Peer peer) {
        this.batch = batch;
        this.request = request;
        this.write = write;
        this.local = local;
        this.remoteOffset = remoteOffset;
        this.location = location;
        this.peer = peer;
    }

    long length() {
        return local.byteSize();
    }
}
