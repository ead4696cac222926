package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A worker's segment: its KV memory is the registered buffer; stale files of dead workers are swept; bad settings are
 * named.
 */
class WorkerSegmentTest {
    @TempDir
    Path shm;

    @Test
    void theKvSlabIsTheRegisteredBufferAndDeadWorkersFilesAreSwept() throws Exception {
        long dead = 4_000_000; // above any pid this kernel hands out (pid_max is at most 4194304)
        while (ProcessHandle.of(dead).isPresent()) dead++;
        Path stale = Files.writeString(shm.resolve("mooncakej-decode-somehost-" + dead + ".seg"), "x");
        Path live = Files.writeString(
                shm.resolve(
                        "mooncakej-decode-somehost-" + ProcessHandle.current().pid() + ".seg"),
                "x");
        Path other = Files.writeString(shm.resolve("mooncakej-prefill-somehost-" + dead + ".seg"), "x");
        // a link named like a dead worker's file: the sweep proves what it deletes, and this is no segment file
        Path target = Files.writeString(shm.resolve("precious.bin"), "keep me");
        Path link = Files.createSymbolicLink(shm.resolve("mooncakej-decode-otherhost-" + dead + ".seg"), target);
        TransferConfig cfg = WorkerSegment.config(
                "mooncakej.decode.kv-", "shm,tcp", shm.toString(), "127.0.0.1", 0, Engines.SECRET, 5000, Map.of());
        try (WorkerSegment w = new WorkerSegment("decode", cfg, new SegmentMetadata.Embedded())) {
            assertThat(stale).as("a dead decode worker's file").doesNotExist();
            assertThat(live).as("a live process's file").exists();
            assertThat(other).as("another role's file").exists();
            assertThat(Files.isSymbolicLink(link)).as("a link is never swept").isTrue();
            assertThat(Files.readString(target)).isEqualTo("keep me");
            var slab = w.kvMemory().apply(1 << 20);
            assertThat(w.engine().descriptor().registered(w.engine().offsetOf(slab), 1 << 20))
                    .isTrue();
            assertThat(w.name())
                    .startsWith("decode-")
                    .endsWith("-" + ProcessHandle.current().pid());
            assertThatThrownBy(() -> w.kvMemory().apply(10)).hasMessageContaining("already allocated");
        }
        assertThat(List.of(shm.toFile().list()))
                .noneMatch(n -> n.contains("-" + ProcessHandle.current().pid() + ".seg")
                        && n.startsWith("mooncakej-decode-")
                        && !n.contains("somehost"));
    }
}
