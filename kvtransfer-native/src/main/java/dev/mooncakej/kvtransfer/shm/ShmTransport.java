package dev.mooncakej.kvtransfer.shm;

import dev.mooncakej.kvtransfer.spi.Peer;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.SegmentFiles;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transport;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The shm transport, for peers on the same host: the peer's segment is a shared-memory file that this
 * process maps once, so a transfer is a memory copy. Batches of at least {@link #PARALLEL_BYTES} are
 * split over the copy threads that are idle while fewer than {@code copyThreads} threads copy (the
 * submitting thread takes one share); smaller ones, and large ones while other submitters keep the
 * copy threads' worth of cores busy, are copied by the submitting thread. Either way the slices of a
 * batch are sorted by address and those adjacent on both sides (the neighbouring KV blocks of one
 * request) are merged into one copy of up to {@link #MAX_RUN} bytes.
 */
public final class ShmTransport implements Transport {
    public static final long PARALLEL_BYTES = 4L << 20;
    /** The longest run of adjacent slices copied at once. */
    static final long MAX_RUN = 4L << 20;

    private record Job(MemorySegment remote, Slice slice, Completion completion) {}

    private static final Comparator<Job> ORDER = Comparator.<Job>comparingLong(
                    j -> j.slice().local.address())
            .thenComparingLong(j -> j.slice().remoteOffset);

    /** Memory copies made by every shm transport of this process (a run of merged slices is one). */
    private static final LongAdder COPIES = new LongAdder();

    private final Arena arena = Arena.ofShared();
    private final Map<String, MemorySegment> mapped = new ConcurrentHashMap<>();
    private final int threads;
    private final ExecutorService copiers;
    /** Copy threads free to take a share of a large batch. */
    private final Semaphore idleCopiers;
    /** Threads copying for this transport now: submitters and copy threads. */
    private final AtomicInteger busy = new AtomicInteger();

    private final Path dir;

    ShmTransport(int threads, Path dir) {
        this.threads = threads;
        this.dir = dir;
        this.idleCopiers = new Semaphore(Math.max(0, threads - 1));

        this.copiers = threads > 1
                ? Executors.newFixedThreadPool(
                        threads - 1,
                        r -> Thread.ofPlatform()
                                .daemon()
                                .name("transfer-shm-copy")
                                .unstarted(r))
                : null;
    }

    /** {@code copies}: memory copies made by every shm transport of this process (merged adjacent slices: one). */
    @Override
    public long counter(String counter) {
        return counter.equals("copies") ? COPIES.sum() : 0;
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
    public void submit(Peer peer, List<? extends Slice> slices, Completion completion) {
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
        busy.incrementAndGet();
        try {
            if (slices.size() == 1) {
                copy(remote, slices, 0, 1, completion);
                return;
            }
            ArrayList<Job> jobs = new ArrayList<>(slices.size());
            for (Slice s : slices) jobs.add(new Job(remote, s, completion));
            jobs.sort(ORDER);
            int helpers = copiers == null || total < PARALLEL_BYTES ? 0 : helpers(Math.min(threads, jobs.size()) - 1);
            if (helpers == 0) copyRuns(jobs); // on this thread, adjacent slices merged
            else split(jobs, total, helpers + 1);
        } finally {
            busy.decrementAndGet();
        }
    }

    /**
     * Up to {@code wanted} idle copy threads for one batch, none while as many threads as there are copy
     * threads are copying already (other submitters): a share handed to a copy thread then only waits
     * behind other batches' shares, and the submitter waits for it (measured: two submitters and one
     * copy thread moved merged 4 MiB batches at 0.4x the two-thread copy).
     */
    private int helpers(int wanted) {
        int got = 0;
        while (got < wanted && busy.get() < threads && idleCopiers.tryAcquire()) {
            busy.incrementAndGet();
            got++;
        }
        return got;
    }

    /** A large batch cut into {@code parts} shares of bytes, the first copied here, runs merged in each. */
    private void split(List<Job> jobs, long total, int parts) {
        int[] cut = new int[parts + 1];
        long acc = 0;
        for (int i = 0, p = 1; i < jobs.size() && p < parts; i++) {
            acc += jobs.get(i).slice().length();
            if (acc >= total * p / parts) cut[p++] = i + 1;
        }
        cut[parts] = jobs.size();
        for (int p = 1; p < parts; p++) if (cut[p] < cut[p - 1]) cut[p] = cut[p - 1];
        Future<?>[] futures = new Future<?>[parts - 1];
        for (int p = 1; p < parts; p++) {
            List<Job> share = jobs.subList(cut[p], cut[p + 1]);
            Runnable copyShare = () -> {
                try {
                    copyRuns(share);
                } finally {
                    busy.decrementAndGet();
                    idleCopiers.release();
                }
            };
            try {
                futures[p - 1] = copiers.submit(copyShare);
            } catch (RejectedExecutionException closing) {
                copyShare.run(); // the transport is closing: copied here
            }
        }
        copyRuns(jobs.subList(cut[0], cut[1]));
        for (Future<?> f : futures) {
            if (f == null) continue;
            try {
                f.get();
            } catch (Exception e) {
                // each copy reports its own slices; nothing else to do
            }
        }
    }

    /** Copies sorted jobs, each run of adjacent ones (up to MAX_RUN bytes) at once. */
    private static void copyRuns(List<Job> sorted) {
        if (sorted.isEmpty()) return;
        int from = 0;
        long run = sorted.get(0).slice().length();
        for (int i = 1; i <= sorted.size(); i++) {
            if (i < sorted.size()
                    && adjacent(sorted.get(i - 1), sorted.get(i))
                    && run + sorted.get(i).slice().length() <= MAX_RUN) {
                run += sorted.get(i).slice().length();
                continue;
            }
            copyRun(sorted.subList(from, i), run);
            from = i;
            if (i < sorted.size()) run = sorted.get(i).slice().length();
        }
    }

    /** Whether {@code b} continues {@code a} on both sides, in the same direction, to the same peer. */
    private static boolean adjacent(Job a, Job b) {
        Slice x = a.slice(), y = b.slice();
        return a.remote() == b.remote()
                && x.write == y.write
                && x.local.address() + x.length() == y.local.address()
                && x.remoteOffset + x.length() == y.remoteOffset;
    }

    /** One copy for a run of adjacent slices (each checked on its own when the run cannot be copied whole). */
    private static void copyRun(List<Job> run, long bytes) {
        Job first = run.get(0);
        MemorySegment remote = first.remote();
        Slice s0 = first.slice();
        if (run.size() > 1 && s0.remoteOffset >= 0 && s0.remoteOffset <= remote.byteSize() - bytes) {
            try {
                MemorySegment local =
                        MemorySegment.ofAddress(s0.local.address()).reinterpret(bytes);
                if (s0.write) MemorySegment.copy(local, 0, remote, s0.remoteOffset, bytes);
                else MemorySegment.copy(remote, s0.remoteOffset, local, 0, bytes);
                COPIES.increment();
            } catch (RuntimeException e) {
                for (Job j : run) copy(j.remote(), List.of(j.slice()), 0, 1, j.completion()); // each on its own
                return;
            }
            RuntimeException thrown = null;
            for (Job j : run) { // every slice is reported, whatever one completion callback throws
                try {
                    j.completion().done(j.slice());
                } catch (RuntimeException e) {
                    thrown = e;
                }
            }
            if (thrown != null) throw thrown;
            return;
        }
        for (Job j : run) copy(j.remote(), List.of(j.slice()), 0, 1, j.completion());
    }

    private static void copy(
            MemorySegment remote, List<? extends Slice> slices, int from, int to, Completion completion) {
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
                COPIES.increment();
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
                    file, StandardOpenOption.READ, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
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
