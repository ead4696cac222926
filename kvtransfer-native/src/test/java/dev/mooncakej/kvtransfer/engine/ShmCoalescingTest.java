package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shm transport merges the requests of a batch that are adjacent on both sides (the neighbouring
 * KV blocks of one request) into one copy, whatever order they come in, and copies the rest one by
 * one; the bytes arrive the same either way.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ShmCoalescingTest {
    @TempDir
    Path shm;

    @Test
    void adjacentRequestsOfABatchAreOneCopyAndScatteredOnesAreNot() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = Engines.config("shm", shm);
        int block = 64 * 1024, n = 48;
        try (TransferEngine a = new TransferEngine("a", md, 8 << 20, cfg);
                TransferEngine b = new TransferEngine("b", md, 8 << 20, cfg)) {
            MemorySegment abuf = a.allocate(4 << 20, "cpu:0");
            MemorySegment bbuf = b.allocate(4 << 20, "cpu:0");
            Engines.fillRandom(abuf, 31);
            List<TransferRequest> adjacent = new ArrayList<>();
            for (int i = 0; i < n; i++)
                adjacent.add(new TransferRequest(
                        TransferRequest.Opcode.WRITE, (long) i * block, "b", (long) i * block, block));
            Collections.shuffle(adjacent, new Random(5)); // submitted out of order
            long before = a.transportCounter("shm", "copies");
            assertThat(a.submit(adjacent).done().get(10, TimeUnit.SECONDS).allCompleted())
                    .isTrue();
            assertThat(a.transportCounter("shm", "copies") - before)
                    .as("copies for %d adjacent blocks", n)
                    .isEqualTo(1);
            assertThat(Engines.crc(bbuf.asSlice(0, (long) n * block)))
                    .isEqualTo(Engines.crc(abuf.asSlice(0, (long) n * block)));

            List<TransferRequest> scattered = new ArrayList<>(); // every other block: nothing to merge
            for (int i = 0; i < n / 2; i++)
                scattered.add(new TransferRequest(
                        TransferRequest.Opcode.READ, (long) (2 * i) * block, "b", (long) (2 * i + 1) * block, block));
            before = a.transportCounter("shm", "copies");
            assertThat(a.submit(scattered).done().get(10, TimeUnit.SECONDS).allCompleted())
                    .isTrue();
            assertThat(a.transportCounter("shm", "copies") - before).isEqualTo(n / 2);
            for (int i = 0; i < n / 2; i++)
                assertThat(Engines.crc(abuf.asSlice((long) (2 * i) * block, block)))
                        .isEqualTo(Engines.crc(bbuf.asSlice((long) (2 * i + 1) * block, block)));
        }
    }
}
