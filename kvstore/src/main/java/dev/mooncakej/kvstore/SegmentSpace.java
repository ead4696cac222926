package dev.mooncakej.kvstore;

import java.util.Map;
import java.util.TreeMap;

/**
 * A worker-contributed segment as the master sees it: who owns it, its tier, and which byte ranges
 * are free (first fit over free ranges kept by offset, neighbours merged on free). Not thread-safe:
 * the master calls it under its lock.
 */
final class SegmentSpace {
    final String name;
    final String client;
    final Tier tier;
    final long base;
    final long capacity;
    private final TreeMap<Long, Long> free = new TreeMap<>(); // offset -> length
    private long used;
    /** Its worker manages the memory (a prefix cache in its KV slab): the master only records what it holds. */
    boolean heldOnly;

    SegmentSpace(String name, String client, Tier tier, long base, long capacity) {
        this.name = name;
        this.client = client;
        this.tier = tier;
        this.base = base;
        this.capacity = capacity;
        free.put(base, capacity);
    }

    /** Bytes in use: allocated ranges, or (held-only) the blocks its worker reports holding. */
    long used() {
        return heldOnly ? heldBytes : used;
    }

    /** Bytes of the held replicas its worker reported (held-only segments). */
    long heldBytes;

    double freeRatio() {
        return 1.0 - (double) used / capacity;
    }

    /** The offset of a free range of {@code length} bytes, now taken; -1 when none is large enough. */
    long allocate(long length) {
        for (Map.Entry<Long, Long> e : free.entrySet()) {
            if (e.getValue() >= length) {
                long off = e.getKey(), len = e.getValue();
                free.remove(off);
                if (len > length) free.put(off + length, len - length);
                used += length;
                return off;
            }
        }
        return -1;
    }

    void release(long offset, long length) {
        if (offset < base || offset + length > base + capacity) {
            throw new IllegalArgumentException("range [" + offset + ", +" + length + ") is outside segment " + name);
        }
        long start = offset, len = length;
        Map.Entry<Long, Long> before = free.floorEntry(offset);
        if (before != null && before.getKey() + before.getValue() == offset) {
            start = before.getKey();
            len += before.getValue();
            free.remove(before.getKey());
        }
        Long after = free.containsKey(offset + length) ? offset + length : null;
        if (after != null) len += free.remove(after);
        free.put(start, len);
        used -= length;
    }
}
