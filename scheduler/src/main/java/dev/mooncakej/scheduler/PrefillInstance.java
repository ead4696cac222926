package dev.mooncakej.scheduler;

import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;

/**
 * One prefill instance as the scheduler sees it: when its FIFO queue drains, the blocks its prefix
 * cache holds (LRU, {@code capacityBlocks}, 0 = unbounded), mirrored in the {@link PrefixIndex}, and
 * apart from them the blocks it <em>will</em> hold once the requests queued on it have run (in a
 * second index): a request routed here may count on those (the worker makes it wait for them rather
 * than compute them twice), but no other instance can fetch them yet.
 */
public final class PrefillInstance {
    final int id;
    private final int capacityBlocks;
    private final PrefixIndex index;
    private final PrefixIndex pendingIndex;
    private final LinkedHashMap<Long, Boolean> lru = new LinkedHashMap<>(1024, 0.75f, true);
    /** Blocks queued requests will produce here, with how many of them will. */
    private final HashMap<Long, Integer> pending = new HashMap<>();

    double busyUntil;
    int queued;
    double busySeconds;
    /** The predicted seconds (fetch and prefill) of the requests scheduled here and not yet ended. */
    double pendingSeconds;

    PrefillInstance(int id, int capacityBlocks, PrefixIndex index) {
        this(id, capacityBlocks, index, new PrefixIndex());
    }

    PrefillInstance(int id, int capacityBlocks, PrefixIndex index, PrefixIndex pendingIndex) {
        this.id = id;
        this.capacityBlocks = capacityBlocks;
        this.index = index;
        this.pendingIndex = pendingIndex;
    }

    /** Blocks a request scheduled here will produce (those not held already): counted on, not fetchable. */
    void willHold(long[] blocks) {
        for (long b : blocks) {
            if (lru.containsKey(b)) continue;
            if (pending.merge(b, 1, Integer::sum) == 1) pendingIndex.add(b, id);
        }
    }

    /** A request scheduled here ended: what it was to produce is no longer pending (held now, or never). */
    void producedOrDropped(long[] blocks) {
        for (long b : blocks) {
            Integer n = pending.get(b);
            if (n == null) continue;
            if (n == 1) {
                pending.remove(b);
                pendingIndex.remove(b, id);
            } else pending.put(b, n - 1);
        }
    }

    /** Blocks some queued request will produce here and the cache does not hold yet. */
    public int pendingBlocks() {
        return pending.size();
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
            if (pending.remove(b) != null) pendingIndex.remove(b, id);
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
        for (long b : pending.keySet()) pendingIndex.remove(b, id);
        pending.clear();
    }

    /** Marks the first {@code n} blocks as just used (a cache hit keeps them warm). */
    public void touch(long[] blocks, int n) {
        for (int i = 0; i < n; i++) lru.get(blocks[i]);
    }
}
