package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.shm.ShmTransport;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.Transports;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A large batch is shared with the shm transport's copy threads only while they are idle and fewer
 * threads than it has copy threads are copying: with the other cores busy with another submitter's
 * copy, a share handed over would only queue, and the submitter would wait for it.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ShmCopyThreadsTest {
    @TempDir
    Path shm;

    private static final int BLOCK = 64 * 1024;

    /** Records which threads completed slices; optionally holds the first completion until released. */
    private static final class Recorder implements Transport.Completion {
        final Set<String> threads = ConcurrentHashMap.newKeySet();
        final CountDownLatch inside = new CountDownLatch(1), release;
        final List<String> failures = new ArrayList<>();

        Recorder(boolean hold) {
            release = new CountDownLatch(hold ? 1 : 0);
        }

        @Override
        public void done(Slice slice) {
            BatchSlice s = (BatchSlice) slice;
            threads.add(Thread.currentThread().getName());
            s.batch.sliceDone(s.request, s.length());
            inside.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public synchronized void failed(Slice s, String reason, boolean transportError) {
            failures.add(reason);
        }
    }

    private static List<BatchSlice> adjacent(EnginePeer peer, MemorySegment local, long from, int n) {
        TransferBatch batch = new TransferBatch(n);
        List<BatchSlice> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            batch.expectSlices(i, 1);
            long off = from + (long) i * BLOCK;
            out.add(new BatchSlice(batch, i, true, local.asSlice(off, BLOCK), off, "cpu:0", peer));
        }
        return out;
    }

    @Test
    void aLargeBatchIsSharedWithAnIdleCopyThreadAndNotWhileTheCoresAreCopyingAlready() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = Engines.config("shm", shm);
        int n = (int) (2 * ShmTransport.PARALLEL_BYTES / BLOCK); // 8 MiB: past the size that is split
        try (TransferEngine b = new TransferEngine("b", md, 16L << 20, cfg);
                Transport shmTransport = Transports.provider("shm")
                        .open(new TransportContext("a", cfg.withCopyThreads(2), null, null, new StringBuilder()));
                Arena arena = Arena.ofShared()) {
            b.allocate(16L << 20, "cpu:0");
            EnginePeer peer = new EnginePeer(md.lookup("b").orElseThrow(), shmTransport);
            MemorySegment local = arena.allocate(16L << 20, 64);
            Engines.fillRandom(local, 7);

            Recorder idle = new Recorder(false);
            shmTransport.submit(peer, adjacent(peer, local, 0, n), idle);
            assertThat(idle.failures).isEmpty();
            assertThat(idle.threads)
                    .as("an idle transport shares a large batch with its copy thread")
                    .contains(Thread.currentThread().getName(), "transfer-shm-copy");

            Recorder holding = new Recorder(true); // another submitter, still copying (held in its completion)
            Thread other = Thread.ofPlatform()
                    .name("other-submitter")
                    .start(() -> shmTransport.submit(peer, adjacent(peer, local, 8L << 20, 2), holding));
            assertThat(holding.inside.await(10, TimeUnit.SECONDS)).isTrue();
            Recorder busy = new Recorder(false);
            shmTransport.submit(peer, adjacent(peer, local, 0, n), busy);
            holding.release.countDown();
            other.join();
            assertThat(busy.failures).isEmpty();
            assertThat(busy.threads)
                    .as("with two threads copying, the large batch is copied by its own submitter only")
                    .containsExactly(Thread.currentThread().getName());

            Recorder again = new Recorder(false);
            shmTransport.submit(peer, adjacent(peer, local, 0, n), again);
            assertThat(again.threads).as("the copy thread's permit came back").contains("transfer-shm-copy");
        }
    }
}
