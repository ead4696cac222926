package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.verbs.Verbs;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * One contract, every transport: two engines restricted to one transport each, random batches of
 * READs and WRITEs (sizes from 1 byte to several slices, several batches in flight at once) verified
 * by checksum; requests outside registered memory refused with the memory around them unchanged.
 * rdma runs only where a device exists; this machine has none (no InfiniBand in its kernel), so it
 * prints why it skipped. {@code rdma-fake} runs the rdma transport against the fake verbs provider,
 * {@code rdma-fake-faults} the same with transport errors injected at {@value #FAULTS_PER_MILLION} per
 * million work requests (each puts its queue pair in error and flushes the work behind it; seeded, so
 * a run repeats): no byte lost or duplicated, every request completed or reported, and afterwards no
 * queue pair, memory region or transport thread left.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TransferContractTest {
    private static final int BUF = 4 << 20;
    static final int FAULTS_PER_MILLION = 5000;

    private String running;
    private long qps0, mrs0;

    @TempDir
    Path shm;

    /**
     * The engine settings for a contract case: {@code rdma-fake} is the rdma transport against the fake
     * verbs provider (a mock of the device, which this machine cannot have; see {@link FakeVerbs}).
     */
    private TransferConfig config(String transport) throws Throwable {
        running = transport;
        if (!transport.startsWith("rdma-fake")) return Engines.config(transport, shm);
        qps0 = FakeVerbs.stat("live_qps");
        mrs0 = FakeVerbs.stat("live_mrs");
        if (transport.equals("rdma-fake")) return FakeVerbs.config(shm);
        FakeVerbs.inject(20261202, FAULTS_PER_MILLION);
        return FakeVerbs.config(shm).withRetry(6, 1_000_000); // stays on rdma: the faults are rdma's to handle
    }

    @AfterEach
    void nothingLeft() throws Throwable {
        if (running == null || !running.startsWith("rdma-fake")) return;
        long injected = FakeVerbs.stat("injected");
        FakeVerbs.inject(0, 0);
        System.out.println(running + ": " + injected + " injected failures so far, " + FakeVerbs.stat("flushed")
                + " flushed work requests");
        assertThat(FakeVerbs.stat("live_qps")).as("queue pairs left").isEqualTo(qps0);
        assertThat(FakeVerbs.stat("live_mrs")).as("memory regions left").isEqualTo(mrs0);
        assertThat(Thread.getAllStackTraces().keySet())
                .extracting(Thread::getName)
                .filteredOn(n -> n.startsWith("transfer-rdma"))
                .isEmpty();
    }

    private static String negotiated(String transport) {
        return transport.startsWith("rdma-fake") ? "rdma" : transport;
    }

    private static void requireTransport(String transport) {
        if (transport.equals("rdma")) {
            Verbs.Probe p = Verbs.probe();
            if (!p.available())
                System.out.println("[skip] rdma contract: " + p.reason() + "; no RDMA device on this machine");
            Assumptions.assumeTrue(p.available(), "rdma: " + p.reason());
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tcp", "shm", "rdma", "rdma-fake", "rdma-fake-faults"})
    void randomBatchesArriveIntact(String transport) throws Throwable {
        requireTransport(transport);
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = config(transport).withSlicing(64 * 1024, 16 * 1024);
        try (TransferEngine a = new TransferEngine("prefill-0", md, 2L * BUF, cfg);
                TransferEngine b = new TransferEngine("decode-0", md, 2L * BUF, cfg)) {
            assertThat(a.openSegment("decode-0")).isEqualTo(negotiated(transport));
            MemorySegment abuf = a.allocate(BUF, "cpu:0");
            MemorySegment bbuf = b.allocate(BUF, "cpu:0");
            long aBase = a.offsetOf(abuf), bBase = b.offsetOf(bbuf);
            Engines.fillRandom(abuf, 1);
            Engines.fillRandom(bbuf, 2);
            byte[] expectA = abuf.toArray(ValueLayout.JAVA_BYTE);
            byte[] expectB = bbuf.toArray(ValueLayout.JAVA_BYTE);
            Random rnd = new Random(11);
            for (int round = 0; round < 12; round++) {
                // several batches in flight at once; within one round, ranges never overlap so order does not matter
                List<CompletableFuture<TransferBatch>> inflight = new ArrayList<>();
                List<long[]> used = new ArrayList<>();
                for (int batchNo = 0; batchNo < 4; batchNo++) {
                    List<TransferRequest> batch = new ArrayList<>();
                    for (int k = 0; k < 6; k++) {
                        int len = rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(100) : 1 + rnd.nextInt(200 * 1024);
                        int lo = disjoint(rnd, used, 0, len), ro = disjoint(rnd, used, 1, len);
                        boolean write = rnd.nextBoolean();
                        batch.add(new TransferRequest(
                                write ? TransferRequest.Opcode.WRITE : TransferRequest.Opcode.READ,
                                aBase + lo,
                                "decode-0",
                                bBase + ro,
                                len));
                        if (write) System.arraycopy(expectA, lo, expectB, ro, len);
                        else System.arraycopy(expectB, ro, expectA, lo, len);
                    }
                    inflight.add(a.submit(batch).done());
                }
                for (var f : inflight) {
                    TransferBatch done = f.join();
                    assertThat(done.allCompleted())
                            .as("round %d over %s: %s", round, transport, done.firstProblem())
                            .isTrue();
                }
            }
            assertThat(Engines.crc(bbuf)).as("checksum of decode-0's buffer").isEqualTo(Engines.crc(expectB));
            assertThat(Engines.crc(abuf)).as("checksum of prefill-0's buffer").isEqualTo(Engines.crc(expectA));
        }
    }

    /** A random offset whose range [o, o+len) overlaps no range used in this round on that side (0 local, 1 remote). */
    private static int disjoint(Random rnd, List<long[]> used, int side, int len) {
        while (true) {
            int o = rnd.nextInt(BUF - len);
            boolean clash = false;
            for (long[] u : used) if (u[0] == side && o < u[1] + u[2] && u[1] < o + len) clash = true;
            if (!clash) {
                used.add(new long[] {side, o, len});
                return o;
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tcp", "shm", "rdma", "rdma-fake", "rdma-fake-faults"})
    void aLargeBatchMovesEveryByte(String transport) throws Throwable {
        requireTransport(transport);
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = config(transport).withCopyThreads(2);
        long size = 64L << 20;
        try (TransferEngine a = new TransferEngine("a", md, size, cfg);
                TransferEngine b = new TransferEngine("b", md, size, cfg)) {
            MemorySegment abuf = a.allocate(size, "cpu:0");
            b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 5);
            List<TransferRequest> reqs = new ArrayList<>();
            for (long o = 0; o < size; o += 1 << 20)
                reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, o, "b", o, 1 << 20));
            TransferBatch r = a.submit(reqs).done().join();
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(r.transferredBytes(3)).isEqualTo(1 << 20);
            assertThat(Engines.crc(b.segment())).isEqualTo(Engines.crc(abuf));
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tcp", "shm", "rdma", "rdma-fake"})
    void requestsOutsideRegisteredMemoryAreInvalidAndTouchNothing(String transport) throws Throwable {
        requireTransport(transport);
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = config(transport);
        try (TransferEngine a = new TransferEngine("a", md, 2L * BUF, cfg);
                TransferEngine b = new TransferEngine("b", md, 2L * BUF, cfg)) {
            assertThat(a.openSegment("b")).isEqualTo(negotiated(transport));
            MemorySegment abuf = a.allocate(BUF, "cpu:0");
            abuf.fill((byte) 7);
            b.allocate(4096, "cpu:0"); // only [0, 4096) of b is registered
            TransferBatch r = a.submit(List.of(
                            new TransferRequest(
                                    TransferRequest.Opcode.WRITE, 0, "b", 4000, 200), // past the buffer's end
                            new TransferRequest(
                                    TransferRequest.Opcode.WRITE, 0, "b", 1L << 20, 16), // unregistered range
                            new TransferRequest(
                                    TransferRequest.Opcode.READ, BUF + 64, "b", 0, 64), // local range not registered
                            new TransferRequest(TransferRequest.Opcode.READ, 0, "nobody", 0, 64), // unknown segment
                            new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", -8, 16), // negative offset
                            new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", 0, 4096)))
                    .done()
                    .join();
            assertThat(r.status(0)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.reason(0)).contains("not inside a registered buffer of 'b'");
            assertThat(r.status(1)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.status(2)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.reason(2)).contains("this segment 'a'");
            assertThat(r.status(3)).isEqualTo(TransferBatch.Status.FAILED);
            assertThat(r.reason(3)).contains("'nobody'");
            assertThat(r.status(4)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.status(5)).as(r.reason(5)).isEqualTo(TransferBatch.Status.COMPLETED);
            MemorySegment bseg = b.segment();
            assertThat(bseg.asSlice(0, 4096).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 7);
            assertThat(bseg.asSlice(4096, bseg.byteSize() - 4096).toArray(ValueLayout.JAVA_BYTE))
                    .as("memory outside the registered buffer")
                    .containsOnly((byte) 0);
            assertThat(a.segment().asSlice(BUF, BUF).toArray(ValueLayout.JAVA_BYTE))
                    .as("unregistered local memory")
                    .containsOnly((byte) 0);
        }
        assertThatThrownBy(() -> new TransferEngine("bad name!", new SegmentMetadata.Embedded(), 1024, cfg))
                .hasMessageContaining("bad name!");
    }
}
