package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.inproc.InProcProvider;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transports;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Transports are plugged in, not wired: the engine opens each configured transport by name from the
 * registry, so a transport the engine has never heard of (the test-only {@code inproc}, registered by
 * one services line) is negotiated, moves the bytes, and on failure is downgraded from like the
 * built-in ones; a name nothing registered is refused, naming the ones there are.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PluggableTransportTest {
    @TempDir
    Path shm;

    @AfterEach
    void reset() {
        InProcProvider.failing(false);
    }

    private static List<TransferRequest> writes(int n, int block) {
        List<TransferRequest> out = new ArrayList<>();
        for (int i = 0; i < n; i++)
            out.add(new TransferRequest(TransferRequest.Opcode.WRITE, (long) i * block, "b", (long) i * block, block));
        return out;
    }

    @Test
    void aRegisteredTransportIsFoundByNameAndCarriesTheBatch() throws Exception {
        assertThat(Transports.names()).contains("rdma", "shm", "tcp", InProcProvider.NAME);
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = Engines.config("tcp", shm).withTransports(List.of(InProcProvider.NAME, "tcp"));
        try (TransferEngine a = new TransferEngine("a", md, 4 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 4 << 20, cfg)) {
            MemorySegment abuf = a.allocate(2 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(2 << 20, "cpu:0");
            InProcProvider.expose("b", b.segment());
            Engines.fillRandom(abuf, 11);
            assertThat(b.descriptor().transports()).containsExactly(InProcProvider.NAME, "tcp");
            assertThat(a.openSegment("b")).isEqualTo(InProcProvider.NAME);
            assertThat(a.submit(writes(32, 64 * 1024))
                            .done()
                            .get(10, TimeUnit.SECONDS)
                            .allCompleted())
                    .isTrue();
            assertThat(Engines.crc(bbuf)).isEqualTo(Engines.crc(abuf));
            assertThat(a.transportCounter(InProcProvider.NAME, "copies")).isEqualTo(32);
            assertThat(a.transportCounter("tcp", "connects"))
                    .as("nothing went over tcp")
                    .isZero();
        }
    }

    @Test
    void aFailingPluggedTransportIsDowngradedFromLikeTheBuiltInOnes() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = Engines.config("tcp", shm)
                .withTransports(List.of(InProcProvider.NAME, "tcp"))
                .withRetry(4, 2);
        try (TransferEngine a = new TransferEngine("a", md, 4 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 4 << 20, cfg)) {
            MemorySegment abuf = a.allocate(2 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(2 << 20, "cpu:0");
            InProcProvider.expose("b", b.segment());
            InProcProvider.failing(true);
            Engines.fillRandom(abuf, 12);
            assertThat(a.submit(writes(8, 64 * 1024))
                            .done()
                            .get(20, TimeUnit.SECONDS)
                            .allCompleted())
                    .as("retried on the next transport after two errors in a row")
                    .isTrue();
            assertThat(a.transportFor("b")).isEqualTo("tcp");
            assertThat(Engines.crc(bbuf.asSlice(0, 8 * 64 * 1024)))
                    .isEqualTo(Engines.crc(abuf.asSlice(0, 8 * 64 * 1024)));
        }
    }

    @Test
    void aNameNothingRegisteredIsRefusedNamingTheOnesThereAre() {
        assertThatThrownBy(() -> Engines.config("tcp", shm).withTransports(List.of("carrier-pigeon", "tcp")))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'carrier-pigeon'")
                .hasMessageContaining("inproc")
                .hasMessageContaining("tcp");
    }
}
