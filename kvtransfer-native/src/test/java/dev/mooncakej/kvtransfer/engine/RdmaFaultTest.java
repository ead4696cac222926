package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * How the rdma transport copes with what real providers do, against the fake verbs provider (a mock
 * of the device, which this machine cannot have; {@link FakeVerbs} says how it behaves like one):
 * completions that come later from the provider's thread, a failed request that puts its QP in error
 * and flushes everything behind it, ports of different MTU and link layer, a port going down, a fatal
 * QP event, a completion queue smaller than the work a device could have in flight, and an endpoint
 * pool so small that endpoints are evicted with work in flight. After each test no queue pair, memory
 * region, CQ, context or transport thread is left, no QP was destroyed with work queued, and no
 * handshake ran on the completion poller.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RdmaFaultTest {
    @TempDir
    Path shm;

    private long qps0, mrs0, cqs0, ctx0, busy0;
    /** A broken CQ can never report its QPs' work: destroying them with work queued is then the only way. */
    private boolean cqBroken;

    @BeforeEach
    void baseline() throws Throwable {
        qps0 = FakeVerbs.stat("live_qps");
        mrs0 = FakeVerbs.stat("live_mrs");
        cqs0 = FakeVerbs.stat("live_cqs");
        ctx0 = FakeVerbs.stat("live_contexts");
        busy0 = FakeVerbs.stat("busy_destroy");
    }

    @AfterEach
    void nothingIsLeft() throws Throwable {
        FakeVerbs.pause(false);
        FakeVerbs.inject(0, 0);
        FakeVerbs.caps(8192, 1 << 20);
        FakeVerbs.port(0, true);
        assertThat(FakeVerbs.stat("live_qps")).as("queue pairs left").isEqualTo(qps0);
        assertThat(FakeVerbs.stat("live_mrs")).as("memory regions left").isEqualTo(mrs0);
        assertThat(FakeVerbs.stat("live_cqs")).as("completion queues left").isEqualTo(cqs0);
        assertThat(FakeVerbs.stat("live_contexts")).as("device contexts left").isEqualTo(ctx0);
        if (!cqBroken)
            assertThat(FakeVerbs.stat("busy_destroy"))
                    .as("QPs destroyed with work queued")
                    .isEqualTo(busy0);
        assertThat(FakeVerbs.stat("rtr_on_poller"))
                .as("handshakes on the completion poller")
                .isZero();
        assertThat(Thread.getAllStackTraces().keySet())
                .extracting(Thread::getName)
                .filteredOn(n -> n.startsWith("transfer-rdma"))
                .as("transport threads left")
                .isEmpty();
    }

    private static List<TransferRequest> writes(String peer, long bytes, int slice) {
        List<TransferRequest> reqs = new ArrayList<>();
        for (long o = 0; o < bytes; o += slice)
            reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, o, peer, o, slice));
        return reqs;
    }

    interface Fault {
        void inject() throws Throwable;
    }

    /**
     * Connects a's endpoints to b with a small batch, then holds the fake's wire, submits {@code size}
     * bytes of writes in slices of {@code slice}, injects the fault while that batch is surely in flight,
     * lets the wire go, and returns the batch's outcome.
     */
    private static TransferBatch faultMidBatch(TransferEngine a, long size, int slice, Fault fault) throws Throwable {
        assertThat(a.submit(writes("b", 1 << 20, 64 * 1024))
                        .done()
                        .get(30, TimeUnit.SECONDS)
                        .allCompleted())
                .isTrue();
        FakeVerbs.pause(true);
        CompletableFuture<TransferBatch> f = a.submit(writes("b", size, slice)).done();
        fault.inject();
        FakeVerbs.pause(false);
        return f.get(60, TimeUnit.SECONDS);
    }

    @Test
    void whenEveryWorkRequestFailsEveryRequestIsReportedFailedWithItsReason() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(2, 1000); // never downgrade to tcp: rdma must report
        try (TransferEngine a = new TransferEngine("a", md, 4 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 4 << 20, cfg)) {
            a.allocate(4 << 20, "cpu:0");
            b.allocate(4 << 20, "cpu:0");
            assertThat(a.openSegment("b")).isEqualTo("rdma");
            FakeVerbs.inject(7, 1_000_000);
            TransferBatch r = a.submit(writes("b", 4 << 20, 64 * 1024)).done().get(60, TimeUnit.SECONDS);
            for (int i = 0; i < 64; i++) {
                assertThat(r.status(i)).isEqualTo(TransferBatch.Status.FAILED);
                assertThat(r.reason(i)).containsAnyOf("work completion status 12", "flushed", "broke");
            }
            FakeVerbs.inject(0, 0);
            TransferBatch ok = a.submit(writes("b", 1 << 20, 64 * 1024)).done().get(30, TimeUnit.SECONDS);
            assertThat(ok.allCompleted())
                    .as("the path recovers: " + ok.firstProblem())
                    .isTrue();
        }
    }

    @Test
    void portsOfDifferentMtuNegotiateTheSmallerOne() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        // fakeib0 is active at 4096, fakeib1 at 2048; the fake refuses RTR with a path MTU above either
        try (TransferEngine a = new TransferEngine("a", md, 4 << 20, FakeVerbs.config(shm, List.of("fakeib0")));
                TransferEngine b = new TransferEngine("b", md, 4 << 20, FakeVerbs.config(shm, List.of("fakeib1")))) {
            MemorySegment abuf = a.allocate(4 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(4 << 20, "cpu:0");
            Engines.fillRandom(abuf, 3);
            TransferBatch r = a.submit(writes("b", 4 << 20, 256 * 1024)).done().get(30, TimeUnit.SECONDS);
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(a.transportFor("b")).isEqualTo("rdma");
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
        }
    }

    @Test
    void roceRoutesByTheRoceV2GidAndALinkLayerMismatchFallsBackToTcp() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine a = new TransferEngine("a", md, 4 << 20, FakeVerbs.config(shm, List.of("fakeroce0")));
                TransferEngine b = new TransferEngine("b", md, 4 << 20, FakeVerbs.config(shm, List.of("fakeroce1")));
                TransferEngine c = new TransferEngine(
                        "c",
                        md,
                        4 << 20,
                        FakeVerbs.config(shm, List.of("fakeib0")).withRetry(4, 1))) {
            assertThat(a.rdmaStatus())
                    .as("index 0 is RoCE v1 link-local; the fake refuses a route from anything but RoCE v2")
                    .contains("GID 3: first RoCE v2 IPv4 GID (10.9.0.3)")
                    .contains("MTU 1024");
            assertThat(b.descriptor().devices().get(0).gid()).isEqualTo("00000000000000000000ffff0a090004");
            MemorySegment abuf = a.allocate(2 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(2 << 20, "cpu:0");
            MemorySegment cbuf = c.allocate(2 << 20, "cpu:0");
            Engines.fillRandom(abuf, 4);
            TransferBatch r = a.submit(writes("b", 2 << 20, 128 * 1024)).done().get(30, TimeUnit.SECONDS);
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(a.transportFor("b")).isEqualTo("rdma");
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));

            Engines.fillRandom(cbuf, 5); // InfiniBand to RoCE: the handshake refuses, naming both link layers
            TransferBatch x = c.submit(writes("b", 2 << 20, 128 * 1024)).done().get(30, TimeUnit.SECONDS);
            assertThat(x.allCompleted()).as(x.firstProblem()).isTrue();
            assertThat(c.transportFor("b")).isEqualTo("tcp");
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(cbuf));
        }
    }

    @Test
    void workInFlightOnADeviceNeverExceedsItsCompletionQueue() throws Throwable {
        FakeVerbs.caps(8192, 64); // a device whose CQ holds 64: two endpoints of 64 each would overrun it
        long overruns0 = FakeVerbs.stat("overruns");
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm, List.of("fakeib0"));
        try (TransferEngine a = new TransferEngine("a", md, 8 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 4 << 20, cfg);
                TransferEngine c = new TransferEngine("c", md, 4 << 20, cfg)) {
            assertThat(a.rdmaStatus()).contains("fakeib0");
            MemorySegment abuf = a.allocate(8 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(4 << 20, "cpu:0");
            MemorySegment cbuf = c.allocate(4 << 20, "cpu:0");
            Engines.fillRandom(abuf, 6);
            for (int round = 0; round < 4; round++) {
                List<TransferRequest> toC = new ArrayList<>();
                for (long o = 0; o < (4 << 20); o += 16 * 1024)
                    toC.add(new TransferRequest(TransferRequest.Opcode.WRITE, (4 << 20) + o, "c", o, 16 * 1024));
                CompletableFuture<TransferBatch> f1 =
                        a.submit(writes("b", 4 << 20, 16 * 1024)).done();
                CompletableFuture<TransferBatch> f2 = a.submit(toC).done();
                assertThat(f1.get(30, TimeUnit.SECONDS).allCompleted()).isTrue();
                assertThat(f2.get(30, TimeUnit.SECONDS).allCompleted()).isTrue();
            }
            assertThat(FakeVerbs.stat("overruns") - overruns0).as("CQ overruns").isZero();
            assertThat(a.transportFor("b")).isEqualTo("rdma");
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf.asSlice(0, 4 << 20)));
            assertThat(Engines.crc(cbuf)).isEqualTo(Engines.crc(abuf.asSlice(4 << 20, 4 << 20)));
        }
    }

    @Test
    void aPortGoingDownMidBatchMovesItsWorkToTheOtherDeviceAndComesBackWhenTheStateReturns() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(4, 1000);
        long size = 32L << 20;
        try (TransferEngine a = new TransferEngine("a", md, size, cfg);
                TransferEngine b = new TransferEngine("b", md, size, cfg)) {
            MemorySegment abuf = a.allocate(size, "cpu:0");
            MemorySegment bbuf = b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 8);
            long flushed0 = FakeVerbs.stat("flushed");
            TransferBatch r = faultMidBatch(a, size, 16 * 1024, () -> FakeVerbs.port(0, false));
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
            assertThat(FakeVerbs.stat("flushed") - flushed0)
                    .as("work flushed by the port going down")
                    .isPositive();
            // while it is down, everything goes over fakeib1
            bbuf.fill((byte) 0);
            TransferBatch r2 = a.submit(writes("b", size, 64 * 1024)).done().get(60, TimeUnit.SECONDS);
            assertThat(r2.allCompleted()).as(r2.firstProblem()).isTrue();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
            FakeVerbs.port(0, true);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (a.rdmaDevicesDown() > 0 && System.nanoTime() < until) Thread.sleep(10);
            assertThat(a.rdmaDevicesDown())
                    .as("fakeib0 usable again after IBV_EVENT_PORT_ACTIVE")
                    .isZero();
        }
    }

    @Test
    void aFatalQueuePairEventBreaksItsEndpointAndTheWorkIsRetried() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(4, 1000);
        long size = 32L << 20;
        try (TransferEngine a = new TransferEngine("a", md, size, cfg);
                TransferEngine b = new TransferEngine("b", md, size, cfg)) {
            MemorySegment abuf = a.allocate(size, "cpu:0");
            MemorySegment bbuf = b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 9);
            long flushed0 = FakeVerbs.stat("flushed");
            TransferBatch r = faultMidBatch(a, size, 16 * 1024, () -> {
                FakeVerbs.qpFatalOnDevice(0);
                FakeVerbs.qpFatalOnDevice(1);
            });
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
            assertThat(FakeVerbs.stat("flushed") - flushed0)
                    .as("work flushed from the failed QPs")
                    .isPositive();
        }
    }

    @Test
    void aCompletionQueueErrorTakesTheDeviceOutAndItsWorkInFlightMovesToTheOther() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(4, 1000);
        long size = 16L << 20;
        try (TransferEngine a = new TransferEngine("a", md, size, cfg);
                TransferEngine b = new TransferEngine("b", md, size, cfg)) {
            MemorySegment abuf = a.allocate(size, "cpu:0");
            MemorySegment bbuf = b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 13);
            cqBroken = true;
            // fakeib0's CQs (a's and b's) can no longer be reaped
            TransferBatch r = faultMidBatch(a, size, 16 * 1024, () -> FakeVerbs.cqError(0));
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
            assertThat(a.rdmaDevicesDown()).as("fakeib0 is out").isEqualTo(1);
            assertThat(a.transportFor("b")).as("fakeib1 carries on").isEqualTo("rdma");
        }
    }

    @Test
    void evictedEndpointsFinishTheirWorkInFlightBeforeTheirQueuePairIsDestroyed() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg =
                FakeVerbs.config(shm, List.of("fakeib0")).withConnections(1, 1).withRetry(8, 1000);
        try (TransferEngine a = new TransferEngine("a", md, 8 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 4 << 20, cfg);
                TransferEngine c = new TransferEngine("c", md, 4 << 20, cfg)) {
            MemorySegment abuf = a.allocate(8 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(4 << 20, "cpu:0");
            MemorySegment cbuf = c.allocate(4 << 20, "cpu:0");
            Engines.fillRandom(abuf, 10);
            for (int round = 0; round < 6; round++) { // one endpoint allowed: b's and c's evict each other
                List<TransferRequest> toC = new ArrayList<>();
                for (long o = 0; o < (4 << 20); o += 64 * 1024)
                    toC.add(new TransferRequest(TransferRequest.Opcode.WRITE, (4 << 20) + o, "c", o, 64 * 1024));
                CompletableFuture<TransferBatch> f1 =
                        a.submit(writes("b", 4 << 20, 64 * 1024)).done();
                CompletableFuture<TransferBatch> f2 = a.submit(toC).done();
                TransferBatch r1 = f1.get(30, TimeUnit.SECONDS), r2 = f2.get(30, TimeUnit.SECONDS);
                assertThat(r1.allCompleted()).as(r1.firstProblem()).isTrue();
                assertThat(r2.allCompleted()).as(r2.firstProblem()).isTrue();
            }
            assertThat(a.rdmaForcedFailures())
                    .as("work failed for want of its completion")
                    .isZero();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf.asSlice(0, 4 << 20)));
            assertThat(Engines.crc(cbuf)).isEqualTo(Engines.crc(abuf.asSlice(4 << 20, 4 << 20)));
        }
    }

    @Test
    void aPeerThatClosesMidBatchFailsTheBatchCleanlyAndTouchesNoFreedMemory() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(3, 1000);
        long size = 16L << 20;
        try (TransferEngine a = new TransferEngine("a", md, size, cfg)) {
            TransferEngine b = new TransferEngine("b", md, size, cfg);
            MemorySegment abuf = a.allocate(size, "cpu:0");
            b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 12);
            assertThat(a.submit(writes("b", 1 << 20, 64 * 1024))
                            .done()
                            .get(30, TimeUnit.SECONDS)
                            .allCompleted())
                    .isTrue();
            FakeVerbs.pause(true);
            CompletableFuture<TransferBatch> f =
                    a.submit(writes("b", size, 64 * 1024)).done();
            // the peer goes away with the batch in flight: its memory regions and QPs are gone first
            Thread closer = Thread.ofPlatform().start(b::close);
            Thread.sleep(50);
            FakeVerbs.pause(false);
            closer.join(30_000);
            TransferBatch r = f.get(60, TimeUnit.SECONDS);
            int failed = 0;
            for (int i = 0; i < 256; i++) {
                assertThat(r.status(i)).isIn(TransferBatch.Status.COMPLETED, TransferBatch.Status.FAILED);
                if (r.status(i) == TransferBatch.Status.FAILED) {
                    failed++;
                    assertThat(r.reason(i)).isNotBlank();
                }
            }
            assertThat(failed).as("requests to a peer that went away mid-batch").isPositive();
        }
    }

    @Test
    void onlyTheRegisteredBuffersAreMemoryRegionsAndUnregisteringRevokesThem() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm);
        try (TransferEngine a = new TransferEngine("a", md, 8 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 8 << 20, cfg)) {
            MemorySegment abuf = a.allocate(1 << 20, "cpu:0");
            long before = FakeVerbs.stat("live_mrs");
            assertThat(b.rdmaMemoryRegions())
                    .as("an empty segment exposes nothing")
                    .isZero();
            MemorySegment slab = b.allocate(1 << 20, "cpu:0");
            MemorySegment pool = b.allocate(1 << 20, "cpu:0");
            assertThat(FakeVerbs.stat("live_mrs") - before)
                    .as("two buffers on two devices")
                    .isEqualTo(4);
            assertThat(b.descriptor().buffers().get(0).rkeys())
                    .doesNotContainAnyElementsOf(b.descriptor().buffers().get(1).rkeys());
            Engines.fillRandom(abuf, 11);
            long poolOff = b.offsetOf(pool);
            assertThat(a.submit(List.of(new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", poolOff, 1 << 20)))
                            .done()
                            .get(30, TimeUnit.SECONDS)
                            .allCompleted())
                    .isTrue();
            b.unregister(pool);
            assertThat(FakeVerbs.stat("live_mrs") - before).isEqualTo(2);
            assertThat(b.rdmaMemoryRegions()).isEqualTo(2);
            assertThat(slab.byteSize()).isEqualTo(1 << 20);
        }
    }
}
