package dev.mooncakej.kvtransfer.engine;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The shm transport, for peers on the same host: the peer's segment is a shared-memory file that this
 * process maps once, so a transfer is one memory copy. Batches of at least {@link #PARALLEL_BYTES}
 * are split over {@code copyThreads} threads (the submitting thread takes one share).
 */
final class ShmTransport implements Transport {
    static final long PARALLEL_BYTES = 4L << 20;

    private final Arena arena = Arena.ofShared();
    private final Map<String, MemorySegment> mapped = new ConcurrentHashMap<>();
    private final int threads;
    private final ExecutorService copiers;

    private final Path dir;

    ShmTransport(int threads, Path dir) {
        this.threads = threads;
        this.dir = dir;
        this.copiers = threads > 1
                ? Executors.newFixedThreadPool(
                        threads - 1,
                        r -> Thread.ofPlatform()
                                .daemon()
                                .name("transfer-shm-copy")
                                .unstarted(r))
                : null;
    }

    @Override
    public String name() {
        return "shm";
    }

    /** One copy per request, or one per copy thread for large ones: small copies cost more per byte than large ones. */
    @Override
    public long sliceBytes(long requestLength, TransferConfig config) {
        return requestLength < PARALLEL_BYTES ? requestLength : (requestLength + threads - 1) / threads;
    }

    @Override
    public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
        return peer.transports().contains("shm")
                && local.transports().contains("shm")
                && local.hostId().equals(peer.hostId())
                && peer.shmFile() != null
                && trusted(peer) != null;
    }

    @Override
    public void submit(Peer peer, List<Slice> slices, Completion completion) {
        MemorySegment remote;
        try {
            remote = map(peer.descriptor);
        } catch (IOException | RuntimeException e) {
            for (Slice s : slices)
                completion.failed(
                        s,
                        "cannot map the segment file " + peer.descriptor.shmFile() + " of '" + peer.name() + "': "
                                + e.getMessage(),
                        true);
            return;
        }
        long total = 0;
        for (Slice s : slices) total += s.length();
        if (copiers == null || total < PARALLEL_BYTES || slices.size() < 2) {
            copy(remote, slices, 0, slices.size(), completion);
            return;
        }
        int parts = Math.min(threads, slices.size());
        Future<?>[] futures = new Future<?>[parts - 1];
        for (int p = 1; p < parts; p++) {
            int from = p * slices.size() / parts, to = (p + 1) * slices.size() / parts;
            futures[p - 1] = copiers.submit(() -> copy(remote, slices, from, to, completion));
        }
        copy(remote, slices, 0, slices.size() / parts, completion);
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (Exception e) {
                // each copy reports its own slices; nothing else to do
            }
        }
    }

    private static void copy(MemorySegment remote, List<Slice> slices, int from, int to, Completion completion) {
        for (int i = from; i < to; i++) {
            Slice s = slices.get(i);
            try {
                if (s.remoteOffset < 0 || s.remoteOffset > remote.byteSize() - s.length()) {
                    completion.failed(
                            s,
                            "remote range [" + s.remoteOffset + ", +" + s.length()
                                    + ") is outside the mapped segment of " + remote.byteSize() + " bytes",
                            false);
                    continue;
                }
                if (s.write) MemorySegment.copy(s.local, 0, remote, s.remoteOffset, s.length());
                else MemorySegment.copy(remote, s.remoteOffset, s.local, 0, s.length());
                completion.done(s);
            } catch (RuntimeException e) {
                completion.failed(s, "shm copy failed: " + e, true);
            }
        }
    }

    /**
     * The peer's segment file if it is the one its name derives in our shm directory, a regular file and no link; else
     * null.
     */
    private Path trusted(SegmentDescriptor peer) {
        try {
            return SegmentFiles.trustedSegmentFile(dir, peer.name(), peer.shmFile());
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private MemorySegment map(SegmentDescriptor peer) throws IOException {
        MemorySegment m = mapped.get(peer.name());
        if (m != null && m.byteSize() == peer.length()) return m;
        synchronized (this) {
            m = mapped.get(peer.name());
            if (m != null && m.byteSize() == peer.length()) return m;
            Path file = SegmentFiles.trustedSegmentFile(dir, peer.name(), peer.shmFile());
            try (FileChannel ch = FileChannel.open(
                    file, StandardOpenOption.READ, StandardOpenOption.WRITE, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                SegmentFiles.requireRegular(file); // re-checked on the open file's path (no swap for a link in between)
                if (ch.size() < peer.length())
                    throw new IOException("the file has " + ch.size() + " bytes, the descriptor says " + peer.length());
                m = ch.map(FileChannel.MapMode.READ_WRITE, 0, peer.length(), arena);
            }
            mapped.put(peer.name(), m);
            return m;
        }
    }

    @Override
    public void forget(String peer) {
        mapped.remove(peer); // the mapping itself stays valid until close (a shared arena frees all at once)
    }

    @Override
    public void close() {
        if (copiers != null) copiers.shutdownNow();
        arena.close();
    }
}
