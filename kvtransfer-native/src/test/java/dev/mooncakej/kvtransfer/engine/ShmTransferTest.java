package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The shm transport through the engine API: two segments backed by shared files (each mapped by its
 * owner and, independently, by the peer), random batches of READs and WRITEs verified byte for byte,
 * and requests outside registered memory refused with nothing written.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ShmTransferTest {
    private static final int BUF = 1 << 20;

    @TempDir
    Path shm;

    @Test
    void randomBatchesOfReadsAndWritesArriveIntact() {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine a = new TransferEngine("prefill-0", md, 2L * BUF, shm); TransferEngine b = new TransferEngine("decode-0", md, 2L * BUF, shm)) {
            MemorySegment abuf = a.allocate(BUF, "cpu:0");
            MemorySegment bbuf = b.allocate(BUF, "cpu:0");
            long aBase = abuf.address() - a.segment().address(), bBase = bbuf.address() - b.segment().address();
            Random rnd = new Random(11);
            for (long i = 0; i < BUF; i += 8) abuf.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
            for (long i = 0; i < BUF; i += 8) bbuf.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
            byte[] expectB = bbuf.toArray(ValueLayout.JAVA_BYTE);
            byte[] expectA = abuf.toArray(ValueLayout.JAVA_BYTE);
            for (int round = 0; round < 20; round++) {
                List<TransferRequest> batch = new ArrayList<>();
                for (int k = 0; k < 16; k++) {
                    int len = 1 + rnd.nextInt(64 * 1024);
                    int lo = rnd.nextInt(BUF - len), ro = rnd.nextInt(BUF - len);
                    boolean write = rnd.nextBoolean();
                    batch.add(new TransferRequest(write ? TransferRequest.Opcode.WRITE : TransferRequest.Opcode.READ, aBase + lo, "decode-0", bBase + ro, len));
                    if (write) System.arraycopy(expectA, lo, expectB, ro, len);
                    else System.arraycopy(expectB, ro, expectA, lo, len);
                }
                TransferBatch done = a.submit(batch).done().join();
                assertThat(done.allCompleted()).as("round %d: %s", round, done.reason(0)).isTrue();
            }
            assertThat(bbuf.toArray(ValueLayout.JAVA_BYTE)).as("decode-0 buffer").isEqualTo(expectB);
            assertThat(abuf.toArray(ValueLayout.JAVA_BYTE)).as("prefill-0 buffer").isEqualTo(expectA);
        }
    }

    @Test
    void requestsOutsideRegisteredMemoryAreInvalidAndTouchNothing() {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        try (TransferEngine a = new TransferEngine("a", md, 2L * BUF, shm); TransferEngine b = new TransferEngine("b", md, 2L * BUF, shm)) {
            MemorySegment abuf = a.allocate(BUF, "cpu:0");
            abuf.fill((byte) 7);
            b.allocate(4096, "cpu:0"); // only [0, 4096) of b is registered
            TransferBatch r = a.submit(List.of(
                    new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", 4000, 200),          // past the buffer's end
                    new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", 1L << 20, 16),       // unregistered range
                    new TransferRequest(TransferRequest.Opcode.WRITE, 2L * BUF - 8, "b", 0, 64),   // past the local segment
                    new TransferRequest(TransferRequest.Opcode.READ, 0, "nobody", 0, 64),          // unknown segment
                    new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", 0, 4096))).done().join();
            assertThat(r.status(0)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.reason(0)).contains("not inside a registered buffer");
            assertThat(r.status(1)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.status(2)).isEqualTo(TransferBatch.Status.INVALID);
            assertThat(r.reason(2)).contains("outside this segment");
            assertThat(r.status(3)).isEqualTo(TransferBatch.Status.FAILED);
            assertThat(r.reason(3)).contains("'nobody'");
            assertThat(r.status(4)).isEqualTo(TransferBatch.Status.COMPLETED);
            MemorySegment bseg = b.segment();
            assertThat(bseg.asSlice(0, 4096).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 7);
            assertThat(bseg.asSlice(4096, bseg.byteSize() - 4096).toArray(ValueLayout.JAVA_BYTE)).as("memory outside the registered buffer").containsOnly((byte) 0);
        }
        assertThatThrownBy(() -> new TransferEngine("bad name!", new SegmentMetadata.Embedded(), 1024, shm)).hasMessageContaining("bad name!");
    }
}
