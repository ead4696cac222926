package dev.mooncakej.kvtransfer.engine;

import java.util.List;

/**
 * What a process publishes about its transfer segment (one per process, named uniquely in the
 * cluster): where it runs, the shared-memory file backing it (same-host peers map it), and the
 * buffers registered in it. Offsets are in the segment's own address space, [0, length).
 *
 * @param buffers registered ranges; a remote request must fall inside one of them
 */
public record SegmentDescriptor(String name, String host, String shmFile, long length, List<Buffer> buffers) {

    /** A registered range of the segment and the memory location it lives in (e.g. {@code cpu:0}). */
    public record Buffer(long offset, long length, String location) {
        public boolean contains(long off, long len) {
            return off >= offset && len >= 0 && off <= offset + length - len;
        }
    }

    public SegmentDescriptor {
        buffers = List.copyOf(buffers);
    }

    /** True when [off, off + len) lies inside one registered buffer. */
    public boolean registered(long off, long len) {
        for (Buffer b : buffers) if (b.contains(off, len)) return true;
        return false;
    }
}
