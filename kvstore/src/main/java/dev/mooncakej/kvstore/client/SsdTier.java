package dev.mooncakej.kvstore.client;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A worker's SSD tier ({@code mooncakej.store.ssd-dir}, {@code ssd-bytes}): KV blocks its prefix
 * cache would drop are written to one file of fixed block slots instead ({@code
 * <dir>/mooncakej-<segment>.ssd}, owner-only, removed on close; a dead worker's file is removed by the
 * next worker of its role on that directory), and read back when a prompt reaches them. Least recently
 * used slots are reused when it is full. Thread-safe (synchronized); I/O runs in the caller.
 */
public final class SsdTier implements AutoCloseable {
    private final Path file;
    private final FileChannel channel;
    private final long blockBytes;
    private final int slots;
    private final LinkedHashMap<Long, Integer> bySlot = new LinkedHashMap<>(1024, 0.75f, true); // LRU
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final List<Long> stored = new ArrayList<>(), storedOffsets = new ArrayList<>(), evicted = new ArrayList<>();
    private long reads, writes;

    public SsdTier(Path dir, String segment, long capacityBytes, long blockBytes) {
        if (blockBytes <= 0 || capacityBytes < blockBytes)
            throw new IllegalArgumentException("mooncakej.store.ssd-bytes=" + capacityBytes
                    + ": expected at least one KV block (" + blockBytes + " bytes)");
        this.blockBytes = blockBytes;
        this.slots = (int) Math.min(Integer.MAX_VALUE, capacityBytes / blockBytes);
        for (int i = 0; i < slots; i++) free.add(i);
        removeStale(dir, segment);
        this.file = dir.resolve("mooncakej-" + segment + ".ssd");
        try {
            Files.deleteIfExists(file); // a fresh file, never through a link left in its place
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            this.channel = FileChannel.open(
                    file, StandardOpenOption.READ, StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the SSD tier file " + file + ": " + e.getMessage(), e);
        }
    }

    /** Files of workers of the same role (segment {@code <role>-<host>-<pid>}) whose process is gone. */
    private static void removeStale(Path dir, String segment) {
        int dash = segment.indexOf('-');
        if (dash < 0) return;
        Pattern p = Pattern.compile("mooncakej-" + Pattern.quote(segment.substring(0, dash)) + "-.*-(\\d+)\\.ssd");
        try (var files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                var m = p.matcher(f.getFileName().toString());
                if (m.matches()
                        && ProcessHandle.of(Long.parseLong(m.group(1))).isEmpty()
                        && Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)
                        && Files.getOwner(f, LinkOption.NOFOLLOW_LINKS)
                                .getName()
                                .equals(System.getProperty("user.name"))) Files.deleteIfExists(f);
            }
        } catch (IOException | RuntimeException ignored) {
            // best effort: a directory that cannot be listed fails with its own message when the file is made
        }
    }

    public long capacityBytes() {
        return (long) slots * blockBytes;
    }

    public synchronized boolean contains(long key) {
        return bySlot.containsKey(key);
    }

    /** Where the tier keeps {@code key} in its file, or -1. */
    public synchronized long offsetOf(long key) {
        Integer slot = bySlot.get(key);
        return slot == null ? -1 : (long) slot * blockBytes;
    }

    public synchronized int size() {
        return bySlot.size();
    }

    /** Writes a block (demotion); the least recently used one makes room when the tier is full. */
    public synchronized void store(long key, MemorySegment block) {
        if (block.byteSize() != blockBytes)
            throw new IllegalArgumentException("a block of " + block.byteSize() + " bytes: expected " + blockBytes);
        if (bySlot.containsKey(key)) {
            bySlot.get(key); // touch
            return;
        }
        if (free.isEmpty()) {
            var oldest = bySlot.entrySet().iterator().next();
            bySlot.remove(oldest.getKey());
            free.add(oldest.getValue());
            evicted.add(oldest.getKey());
        }
        int slot = free.poll();
        try {
            write(block.asByteBuffer(), (long) slot * blockBytes);
        } catch (IOException e) {
            free.add(slot);
            throw new UncheckedIOException("writing a KV block to " + file + " failed: " + e.getMessage(), e);
        }
        bySlot.put(key, slot);
        stored.add(key);
        storedOffsets.add((long) slot * blockBytes);
        writes++;
    }

    /** Reads a block back into {@code into} (promotion); false when the tier does not hold it. */
    public synchronized boolean load(long key, MemorySegment into) {
        Integer slot = bySlot.get(key);
        if (slot == null) return false;
        ByteBuffer dst = into.asByteBuffer();
        long pos = (long) slot * blockBytes;
        try {
            while (dst.hasRemaining()) {
                int n = channel.read(dst, pos + dst.position());
                if (n < 0) return false;
            }
        } catch (IOException e) {
            return false; // recomputed instead
        }
        reads++;
        return true;
    }

    private void write(ByteBuffer src, long pos) throws IOException {
        while (src.hasRemaining()) channel.write(src, pos + src.position());
    }

    /** Keys written (with their offsets in the file) and keys dropped since the last call. */
    public synchronized Changes drain() {
        Changes c = new Changes(
                stored.stream().mapToLong(Long::longValue).toArray(),
                storedOffsets.stream().mapToLong(Long::longValue).toArray(),
                evicted.stream().mapToLong(Long::longValue).toArray());
        stored.clear();
        storedOffsets.clear();
        evicted.clear();
        return c;
    }

    /** Everything held (a full report to a new master); the change lists are cleared. */
    public synchronized Changes snapshot() {
        stored.clear();
        storedOffsets.clear();
        evicted.clear();
        long[] keys = new long[bySlot.size()], offs = new long[bySlot.size()];
        int i = 0;
        for (var e : bySlot.entrySet()) {
            keys[i] = e.getKey();
            offs[i++] = (long) e.getValue() * blockBytes;
        }
        return new Changes(keys, offs, new long[0]);
    }

    public record Changes(long[] stored, long[] offsets, long[] evicted) {}

    public synchronized long reads() {
        return reads;
    }

    public synchronized long writes() {
        return writes;
    }

    @Override
    public synchronized void close() {
        try {
            channel.close();
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // the next worker of this role removes it
        }
    }
}
