package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The rdma transport's own behaviour. This machine has no RDMA device, so the device-level cases run
 * against the fake verbs provider (a mock, see {@link FakeVerbs}): what the descriptor publishes,
 * failed work completions retried on the other device, and the prepared work requests being posted.
 * With the real libibverbs (no device here) the transport reports why and negotiation falls back.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class RdmaTransportTest {
    @TempDir
    Path shm;

    private static long call(String fn, int arg) throws Throwable {
        SymbolLookup lib = SymbolLookup.libraryLookup(FakeVerbs.library(), Arena.global());
        Linker l = Linker.nativeLinker();
        if (arg < 0) {
            MethodHandle h = l.downcallHandle(lib.find(fn).orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_LONG));
            return (long) h.invokeExact();
        }
        MethodHandle h = l.downcallHandle(lib.find(fn).orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(arg);
        return 0;
    }

    @Test
    void descriptorsCarryDevicesKeysAndTopologyAndFailedCompletionsAreRetriedOnTheOtherDevice() throws Throwable {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = FakeVerbs.config(shm).withRetry(4, 100);
        try (TransferEngine a = new TransferEngine("a", md, 8 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 8 << 20, cfg)) {
            MemorySegment abuf = a.allocate(4 << 20, "cpu:0");
            b.allocate(4 << 20, "cpu:0");
            SegmentDescriptor d = b.descriptor();
            assertThat(d.transports()).containsExactly("rdma", "tcp");
            assertThat(d.devices()).extracting(SegmentDescriptor.Device::name).containsExactly("fakeib0", "fakeib1");
            assertThat(d.devices()).extracting(SegmentDescriptor.Device::lid).containsExactly(1, 2);
            assertThat(d.buffers().get(0).rkeys()).hasSize(2).doesNotHaveDuplicates();
            assertThat(b.rdmaStatus())
                    .contains("fakeib0 (INFINIBAND, LID 1, MTU 4096")
                    .contains("fakeib1 (INFINIBAND, LID 2, MTU 2048");
            assertThat(d.topology().get("cpu:0").get(0))
                    .as("preferred devices of cpu:0")
                    .containsExactlyInAnyOrder("fakeib0", "fakeib1");
            assertThat(a.rdmaStatus()).contains("2 device(s)");

            Engines.fillRandom(abuf, 21);
            long posted0 = FakeVerbs.stat("posted"), flushed0 = FakeVerbs.stat("flushed");
            FakeVerbs.fail(3); // the next three work requests complete with IBV_WC_RETRY_EXC_ERR
            List<TransferRequest> reqs = new ArrayList<>();
            for (long o = 0; o < (4 << 20); o += 256 * 1024)
                reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, o, "b", o, 256 * 1024));
            TransferBatch r = a.submit(reqs).done().get(30, TimeUnit.SECONDS);
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(a.transportFor("b"))
                    .as("three failed completions do not downgrade below the threshold")
                    .isEqualTo("rdma");
            assertThat(Engines.crc(b.segment().asSlice(b.offsetOf(b.segment().asSlice(0, 4 << 20)), 4 << 20)))
                    .isEqualTo(Engines.crc(abuf));
            long posted = FakeVerbs.stat("posted") - posted0, flushed = FakeVerbs.stat("flushed") - flushed0;
            assertThat(posted)
                    .as("64 slices of 64 KiB, plus each failed or flushed one posted again")
                    .isGreaterThanOrEqualTo(64 + 3)
                    .isEqualTo(64 + 3 + flushed);
            // and READ back into another local range
            MemorySegment back = a.segment().asSlice(4 << 20, 4 << 20);
            TransferBatch rr = a.submit(
                            List.of(new TransferRequest(TransferRequest.Opcode.READ, 4 << 20, "b", 0, 4 << 20)))
                    .done()
                    .get(30, TimeUnit.SECONDS);
            assertThat(rr.status(0)).as("local range not registered yet").isEqualTo(TransferBatch.Status.INVALID);
            MemorySegment reg = a.allocate(4 << 20, "cpu:0");
            rr = a.submit(List.of(new TransferRequest(TransferRequest.Opcode.READ, a.offsetOf(reg), "b", 0, 4 << 20)))
                    .done()
                    .get(30, TimeUnit.SECONDS);
            assertThat(rr.allCompleted()).as(rr.firstProblem()).isTrue();
            assertThat(Engines.crc(reg)).isEqualTo(Engines.crc(abuf));
            assertThat(back.address()).isEqualTo(reg.address());
        }
    }

    @Test
    void withoutADeviceRdmaReportsWhyAndNegotiationFallsBack() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig real =
                TransferConfig.defaults(Engines.SECRET, shm); // rdma, shm, tcp against the system's libibverbs
        try (TransferEngine a = new TransferEngine("a", md, 1 << 20, real);
                TransferEngine b = new TransferEngine("b", md, 1 << 20, real)) {
            System.out.println("rdma on this machine: " + a.rdmaStatus());
            assertThat(a.rdmaStatus()).containsAnyOf("errno", "no RDMA device", "not installed");
            assertThat(a.descriptor().transports()).doesNotContain("rdma").contains("shm", "tcp");
            assertThat(a.openSegment("b")).isEqualTo("shm");
        }
        // a peer with (fake) devices and one without: no common rdma, so shm on the same host
        try (TransferEngine a = new TransferEngine(
                        "a", md, 1 << 20, FakeVerbs.config(shm).withTransports(List.of("rdma", "shm", "tcp")));
                TransferEngine b = new TransferEngine("b", md, 1 << 20, real)) {
            assertThat(a.descriptor().transports()).contains("rdma");
            assertThat(a.openSegment("b")).isEqualTo("shm");
            assertThat(b.openSegment("a")).isEqualTo("shm");
        }
    }
}
