package dev.mooncakej.scheduler;

import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * One prefill instance as the scheduler sees it: when its FIFO queue drains, and the blocks its
 * prefix cache holds (LRU, {@code capacityBlocks}, 0 = unbounded), mirrored in the {@link PrefixIndex}.
 */
public final class PrefillInstance {
    final int id;
    private final int capacityBlocks;
    private final PrefixIndex index;
    private final LinkedHashMap<Long, Boolean> lru = new LinkedHashMap<>(1024, 0.75f, true);
    double busyUntil;
    int queued;
    double busySeconds;

    PrefillInstance(int id, int capacityBlocks, PrefixIndex index) {
        this.id = id;
        this.capacityBlocks = capacityBlocks;
        this.index = index;
    }

    public int id() {
        return id;
    }

    public double busyUntil() {
        return busyUntil;
    }

    public int queued() {
        return queued;
    }

    public double busySeconds() {
        return busySeconds;
    }

    public int cachedBlocks() {
        return lru.size();
    }

    /** Predicted wait before a new request would start here. */
    public double queueSeconds(double now) {
        return Math.max(0, busyUntil - now);
    }

    /** The blocks of a finished prefill enter this cache (and the global index); LRU eviction beyond capacity. */
    public void cache(long[] blocks) {
        for (long b : blocks) {
            if (lru.put(b, Boolean.TRUE) == null) index.add(b, id);
        }
        if (capacityBlocks > 0) {
            for (Iterator<Long> it = lru.keySet().iterator(); lru.size() > capacityBlocks && it.hasNext(); ) {
                long victim = it.next();
                it.remove();
                index.remove(victim, id);
            }
        }
    }

    /** Blocks the worker evicted leave this cache and the global index. */
    public void uncache(long[] blocks) {
        for (long b : blocks) {
            if (lru.remove(b) != null) index.remove(b, id);
        }
    }

    /** Every block leaves this cache and the global index (the instance is leaving). */
    public void uncacheAll() {
        for (long b : lru.keySet()) index.remove(b, id);
        lru.clear();
    }

    /** Marks the first {@code n} blocks as just used (a cache hit keeps them warm). */
    public void touch(long[] blocks, int n) {
        for (int i = 0; i < n; i++) lru.get(blocks[i]);
    }
}
