package dev.mooncakej.kvtransfer.rdma;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.mooncakej.kvtransfer.verbs.VerbsLayouts;
import dev.mooncakej.kvtransfer.verbs.VerbsLib;
import dev.mooncakej.kvtransfer.verbs.VerbsOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

/**
 * The posting side of one connected RC queue pair: {@value #CHAIN} work requests and their
 * scatter-gather entries prepared once (their fixed parts set when it is made), filled per slice and
 * posted as one chain, so a post makes no allocation. Used under its endpoint's lock.
 */
final class QueuePair {
    static final int CHAIN = 16;

    private static final long WR_SIZE = VerbsLayouts.IBV_SEND_WR.byteSize();
    private static final long SGE_SIZE = VerbsLayouts.IBV_SGE.byteSize();

    /** The {@code ibv_qp} itself. */
    final MemorySegment handle;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment wrs;
    private final MemorySegment sges;
    private final MemorySegment bad;
    private int filled;

    QueuePair(MemorySegment handle) {
        this.handle = handle;
        wrs = arena.allocate(WR_SIZE * CHAIN, 8);
        sges = arena.allocate(SGE_SIZE * CHAIN, 8);
        bad = arena.allocate(ADDRESS);
        for (int i = 0; i < CHAIN; i++) { // fixed parts, once
            MemorySegment wr = wrs.asSlice(i * WR_SIZE, WR_SIZE);
            wr.set(ADDRESS, WR_SG_LIST, sges.asSlice(i * SGE_SIZE, SGE_SIZE));
            wr.set(JAVA_INT, WR_NUM_SGE, 1);
            wr.set(JAVA_INT, WR_SEND_FLAGS, VerbsLib.SEND_SIGNALED);
        }
    }

    /** Fills the chain's next work request: a signaled RDMA WRITE or READ of {@code local} at the remote address. */
    void add(boolean write, long id, long remoteAddr, int rkey, MemorySegment local, int lkey) {
        if (filled == CHAIN) throw new IllegalStateException("a chain holds " + CHAIN + " work requests");
        long wo = filled * WR_SIZE, so = filled * SGE_SIZE;
        wrs.set(JAVA_LONG, wo + WR_ID, id);
        wrs.set(JAVA_INT, wo + WR_OPCODE, write ? VerbsLib.WR_RDMA_WRITE : VerbsLib.WR_RDMA_READ);
        wrs.set(JAVA_LONG, wo + WR_REMOTE_ADDR, remoteAddr);
        wrs.set(JAVA_INT, wo + WR_RKEY, rkey);
        wrs.set(ADDRESS, wo + WR_NEXT, MemorySegment.NULL);
        if (filled > 0) wrs.set(ADDRESS, wo - WR_SIZE + WR_NEXT, wrs.asSlice(wo, WR_SIZE));
        sges.set(JAVA_LONG, so + SGE_ADDR, local.address());
        sges.set(JAVA_INT, so + SGE_LENGTH, (int) local.byteSize());
        sges.set(JAVA_INT, so + SGE_LKEY, lkey);
        filled++;
    }

    /** Posts the chain filled since the last post ({@code ibv_post_send}); returns its result (0: posted). */
    int post() {
        int n = filled;
        filled = 0;
        return n == 0 ? 0 : VerbsOps.postSend(handle, wrs, bad);
    }

    /** Frees the prepared work requests (the queue pair itself is destroyed by its owner first). */
    void close() {
        arena.close();
    }

    static long off(StructLayout l, String f) {
        return l.byteOffset(MemoryLayout.PathElement.groupElement(f));
    }

    private static final long WR_ID = off(VerbsLayouts.IBV_SEND_WR, "wr_id");
    private static final long WR_NEXT = off(VerbsLayouts.IBV_SEND_WR, "next");
    private static final long WR_SG_LIST = off(VerbsLayouts.IBV_SEND_WR, "sg_list");
    private static final long WR_NUM_SGE = off(VerbsLayouts.IBV_SEND_WR, "num_sge");
    private static final long WR_OPCODE = off(VerbsLayouts.IBV_SEND_WR, "opcode");
    private static final long WR_SEND_FLAGS = off(VerbsLayouts.IBV_SEND_WR, "send_flags");
    private static final long WR_REMOTE_ADDR = VerbsLayouts.IBV_SEND_WR.byteOffset(
            MemoryLayout.PathElement.groupElement("wr"),
            MemoryLayout.PathElement.groupElement("rdma"),
            MemoryLayout.PathElement.groupElement("remote_addr"));
    private static final long WR_RKEY = VerbsLayouts.IBV_SEND_WR.byteOffset(
            MemoryLayout.PathElement.groupElement("wr"),
            MemoryLayout.PathElement.groupElement("rdma"),
            MemoryLayout.PathElement.groupElement("rkey"));
    private static final long SGE_ADDR = off(VerbsLayouts.IBV_SGE, "addr");
    private static final long SGE_LENGTH = off(VerbsLayouts.IBV_SGE, "length");
    private static final long SGE_LKEY = off(VerbsLayouts.IBV_SGE, "lkey");
}
