package dev.mooncakej.kvstore.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The SSD tier on a real file: blocks written and read back byte for byte, LRU reuse, owner-only, cleaned up. */
class SsdTierTest {
    @TempDir
    Path dir;

    private static MemorySegment block(Arena a, int seed) {
        MemorySegment m = a.allocate(256);
        for (int i = 0; i < 256; i++) m.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i));
        return m;
    }

    @Test
    void blocksComeBackAsWrittenAndTheLeastRecentlyUsedMakesRoom() throws Exception {
        try (Arena a = Arena.ofConfined();
                SsdTier t =
                        new SsdTier(dir, "prefill-h-" + ProcessHandle.current().pid(), 3 * 256, 256)) {
            Path file =
                    dir.resolve("mooncakej-prefill-h-" + ProcessHandle.current().pid() + ".ssd");
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file)))
                    .isEqualTo("rw-------");
            for (int k = 1; k <= 3; k++) t.store(k, block(a, k));
            MemorySegment back = a.allocate(256);
            assertThat(t.load(1, back)).isTrue(); // 1 is now the most recently used
            assertThat(back.mismatch(block(a, 1))).isEqualTo(-1);
            t.store(4, block(a, 4)); // full: 2, the least recently used, makes room
            assertThat(t.contains(2)).isFalse();
            assertThat(t.load(2, back)).isFalse();
            assertThat(t.load(4, back)).isTrue();
            assertThat(back.mismatch(block(a, 4))).isEqualTo(-1);
            var c = t.drain();
            assertThat(c.stored()).containsExactly(1, 2, 3, 4);
            assertThat(c.evicted()).containsExactly(2);
            assertThat(Arrays.stream(c.offsets()).allMatch(o -> o % 256 == 0)).isTrue();
            assertThat(t.snapshot().stored()).containsExactlyInAnyOrder(1, 3, 4);
            assertThat(t.reads()).isEqualTo(2);
            assertThatThrownBy(() -> t.store(9, a.allocate(100))).hasMessageContaining("expected 256");
            t.close();
            assertThat(file).doesNotExist();
        }
    }

    @Test
    void aDeadWorkersFileIsRemovedAndATooSmallTierIsRefusedByName() throws Exception {
        Path stale = Files.createFile(dir.resolve("mooncakej-prefill-h-999999999.ssd"));
        try (SsdTier t = new SsdTier(dir, "prefill-h-" + ProcessHandle.current().pid(), 256, 256)) {
            assertThat(stale).doesNotExist();
        }
        assertThatThrownBy(() -> new SsdTier(dir, "prefill-x-1", 100, 256))
                .hasMessageContaining("mooncakej.store.ssd-bytes=100");
        assertThatThrownBy(() ->
                        WorkerStoreSettings.from(k -> k.equals("mooncakej.store.ssd-dir") ? "/nonexistent" : null))
                .hasMessageContaining("mooncakej.store.ssd-dir=/nonexistent");
        assertThatThrownBy(() -> WorkerStoreSettings.from(k -> k.equals("mooncakej.store.dram-bytes") ? "lots" : null))
                .hasMessageContaining("mooncakej.store.dram-bytes=lots");
        assertThat(WorkerStoreSettings.from(k -> null).dramBytes()).isEqualTo(WorkerStoreSettings.DEFAULT_DRAM_BYTES);
    }
}
