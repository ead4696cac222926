package dev.mooncakej.kvstore.client;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * A worker's part of the KV pool, from {@code mooncakej.store.*}: {@code dram-bytes} of DRAM the
 * master may allocate in (finished sequences decode workers put there; 0: none), and an optional SSD
 * tier ({@code ssd-dir}, {@code ssd-bytes}) where the prefix cache's cold blocks go instead of being
 * dropped.
 */
public record WorkerStoreSettings(long dramBytes, Path ssdDir, long ssdBytes) {
    public static final long DEFAULT_DRAM_BYTES = 64L << 20;
    public static final long DEFAULT_SSD_BYTES = 1L << 30;

    public WorkerStoreSettings {
        if (dramBytes < 0)
            throw new IllegalArgumentException(
                    "mooncakej.store.dram-bytes=" + dramBytes + ": expected 0 (no pool) or a number of bytes");
        if (ssdDir != null && ssdBytes <= 0)
            throw new IllegalArgumentException(
                    "mooncakej.store.ssd-bytes=" + ssdBytes + ": expected a positive number of bytes with ssd-dir set");
    }

    /** From a property lookup ({@code key -> value or null}); each bad value is named with its key. */
    public static WorkerStoreSettings from(Function<String, String> property) {
        long dram = bytes(property, "mooncakej.store.dram-bytes", DEFAULT_DRAM_BYTES);
        String dir = property.apply("mooncakej.store.ssd-dir");
        long ssd = bytes(property, "mooncakej.store.ssd-bytes", DEFAULT_SSD_BYTES);
        Path ssdDir = null;
        if (dir != null && !dir.isBlank()) {
            ssdDir = Path.of(dir);
            if (!Files.isDirectory(ssdDir) || !Files.isWritable(ssdDir))
                throw new IllegalArgumentException("mooncakej.store.ssd-dir=" + dir
                        + ": not a writable directory; expected a directory on the SSD to keep cold KV blocks in");
        }
        return new WorkerStoreSettings(dram, ssdDir, ssd);
    }

    private static long bytes(Function<String, String> property, String key, long dflt) {
        String v = property.apply(key);
        if (v == null || v.isBlank()) return dflt;
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + "=" + v + ": expected a number of bytes, e.g. 67108864");
        }
    }
}
