package dev.mooncakej.kvtransfer.spi;

import java.util.List;
import java.util.Map;

/**
 * What a process publishes about its transfer segment (one per process, named uniquely in the
 * cluster), as in Mooncake's {@code mooncake/ram/<segment>} entry: where it runs and how to reach it,
 * the transports it offers, its RDMA devices, its topology matrix and the buffers registered in it.
 * Offsets are in the segment's own address space, [0, length).
 *
 * @param hostId      identifies the machine (same value: shm may be used)
 * @param rpcHost     where its tcp transport and control channel listen
 * @param shmFile     the shared-memory file backing the segment (same-host peers map it)
 * @param baseAddress the segment's virtual address in its owner (RDMA remote addresses are base + offset)
 * @param transports  transports it accepts
 * @param devices     its RDMA devices (empty without any)
 * @param topology    memory location to [preferred devices, secondary devices]
 * @param buffers     registered ranges; a remote request must fall inside one of them
 */
public record SegmentDescriptor(
        String name,
        String hostId,
        String rpcHost,
        int rpcPort,
        String shmFile,
        long baseAddress,
        long length,
        List<String> transports,
        List<Device> devices,
        Map<String, List<List<String>>> topology,
        List<Buffer> buffers) {

    /** An RDMA device as peers need it for the queue-pair handshake. */
    public record Device(String name, int lid, String gid) {}

    /**
     * A registered range of the segment and the memory location it lives in (e.g. {@code cpu:0}).
     *
     * @param rkeys RDMA remote keys, one per device of the descriptor (empty without devices)
     */
    public record Buffer(long offset, long length, String location, List<Integer> rkeys) {
        public Buffer {
            rkeys = rkeys == null ? List.of() : List.copyOf(rkeys);
        }

        public boolean contains(long off, long len) {
            return off >= offset && len >= 0 && off <= offset + length - len;
        }
    }

    public SegmentDescriptor {
        transports = List.copyOf(transports);
        devices = devices == null ? List.of() : List.copyOf(devices);
        topology = topology == null ? Map.of() : Map.copyOf(topology);
        buffers = List.copyOf(buffers);
    }

    /** The registered buffer holding [off, off + len), or null when none does. */
    public Buffer bufferOf(long off, long len) {
        for (Buffer b : buffers) if (b.contains(off, len)) return b;
        return null;
    }

    public boolean registered(long off, long len) {
        return bufferOf(off, len) != null;
    }
}
