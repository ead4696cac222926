package dev.mooncakej.kvstore.client;

import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreMount;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Logger;

/**
 * The DRAM a worker contributes to the KV pool ({@code mooncakej.store.dram-bytes}): a buffer of its
 * transfer segment that the store master allocates replicas in, named {@code <segment>:pool}. Peers
 * READ and WRITE it through their transfer engines at the offsets the master hands out; a replica in
 * this worker's own pool is copied in place. {@link #run} keeps it mounted: it heartbeats every
 * {@value #PUSH_MILLIS} ms and mounts again after any call the master did not take (a new leader).
 */
public final class PoolSegment implements Runnable {
    private static final Logger LOG = Logger.getLogger(PoolSegment.class.getName());
    public static final long PUSH_MILLIS = 200;

    private final TransferEngine transfer;
    private final MemorySegment memory;
    private final long offset;
    private final StoreClient store;
    private final String client;
    private volatile boolean running = true;
    private boolean mounted;

    /** @param memory a buffer {@link TransferEngine#allocate allocated} in {@code transfer}'s segment */
    public PoolSegment(TransferEngine transfer, MemorySegment memory, StoreClient store, String client) {
        this.transfer = transfer;
        this.memory = memory;
        this.offset = transfer.offsetOf(memory);
        this.store = store;
        this.client = client;
    }

    /** The segment's name as the store master knows it. */
    public String name() {
        return transfer.name() + StoreClient.POOL_SUFFIX;
    }

    public long capacity() {
        return memory.byteSize();
    }

    /** Where the pool starts in the transfer segment. */
    public long offset() {
        return offset;
    }

    /** Whether [off, off + len) of the transfer segment lies inside the pool (peers may write there). */
    public boolean contains(long off, long len) {
        return len > 0 && off >= offset && off <= offset + memory.byteSize() - len;
    }

    /**
     * Writes {@code src} (memory of this worker's transfer segment) into a replica the master allocated:
     * copied in place when the replica is in this pool, else WRITTEN through the transfer engine. The
     * future tells whether every byte landed.
     */
    public CompletableFuture<Boolean> write(MemorySegment src, StoreReplica dst) {
        if (dst.length() != src.byteSize()) return CompletableFuture.completedFuture(false);
        if (dst.segment().equals(name())) {
            if (!contains(dst.offset(), dst.length())) return CompletableFuture.completedFuture(false);
            MemorySegment.copy(src, 0, memory, dst.offset() - offset, dst.length());
            return CompletableFuture.completedFuture(true);
        }
        String target = StoreClient.transferSegment(dst.segment());
        try {
            transfer.openSegment(target); // from this worker's own metadata only
        } catch (IllegalArgumentException e) {
            return CompletableFuture.completedFuture(false);
        }
        return transfer.submit(List.of(new TransferRequest(
                        TransferRequest.Opcode.WRITE, transfer.offsetOf(src), target, dst.offset(), dst.length())))
                .done()
                .thenApply(TransferBatch::allCompleted);
    }

    /** Mounts the pool (if the master has not got it) and heartbeats; true when the master took it. */
    public boolean pushOnce() {
        if (!mounted) {
            mounted = store.mount(new StoreMount(client, name(), "dram", offset, memory.byteSize(), false));
            if (mounted)
                LOG.info("KV pool segment " + name() + " (" + capacity() + " bytes) mounted at the store master");
            if (!mounted) return false;
        }
        mounted = store.held(new StoreHeld(client, name(), new long[0], new long[0], 0, new long[0]));
        return mounted;
    }

    @Override
    public void run() {
        while (running) {
            try {
                Thread.sleep(PUSH_MILLIS);
                pushOnce();
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                mounted = false;
                LOG.fine("KV pool heartbeat failed: " + e.getMessage());
            }
        }
    }

    public void stop() {
        running = false;
    }
}
