package dev.mooncakej.prefill;

import dev.mooncakej.engine.kv.PagedKvCache;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The prefill worker's local prefix cache: block key -> KV block id. The pool holds one reference on
 * each cached block; requests that reuse a block take their own. Blocks nobody else references are
 * evicted least recently used first when the engine needs room. Thread-safe (synchronized).
 */
final class PrefixBlockPool {
    private final PagedKvCache cache;
    private final LinkedHashMap<Long, Integer> blocks = new LinkedHashMap<>(1024, 0.75f, true); // access order = LRU
    private final java.util.ArrayList<Long> stored = new java.util.ArrayList<>();
    private final java.util.ArrayList<Long> evicted = new java.util.ArrayList<>();
    private boolean recordEvents;

    PrefixBlockPool(PagedKvCache cache) {
        this.cache = cache;
    }

    /** Ids of the longest cached prefix of {@code keys} (at most {@code limit} blocks), marked recently used. */
    synchronized int[] longestPrefix(long[] keys, int limit) {
        int n = 0;
        int[] ids = new int[Math.min(keys.length, limit)];
        while (n < ids.length) {
            Integer id = blocks.get(keys[n]);
            if (id == null) break;
            ids[n++] = id;
        }
        return java.util.Arrays.copyOf(ids, n);
    }

    /** Caches a computed full block under its key (takes a reference); keeps the first one on a race. */
    synchronized void put(long key, int blockId) {
        if (blocks.containsKey(key)) return;
        cache.retain(blockId);
        blocks.put(key, blockId);
        if (recordEvents) stored.add(key);
    }

    /** Evicts up to {@code wanted} unreferenced blocks, oldest first; returns how many were freed. */
    synchronized int evict(int wanted) {
        int freed = 0;
        for (Iterator<Map.Entry<Long, Integer>> it = blocks.entrySet().iterator(); it.hasNext() && freed < wanted; ) {
            Map.Entry<Long, Integer> e = it.next();
            if (cache.refCount(e.getValue()) == 1) { // only this pool holds it
                cache.release(e.getValue());
                if (recordEvents) evicted.add(e.getKey());
                it.remove();
                freed++;
            }
        }
        return freed;
    }

    synchronized int size() {
        return blocks.size();
    }

    /** Every cached key (what a new leader conductor pulls). */
    synchronized long[] keys() {
        long[] out = new long[blocks.size()];
        int i = 0;
        for (long k : blocks.keySet()) out[i++] = k;
        return out;
    }

    /** Starts recording stored and evicted keys for {@link #drainEvents} (in a cluster, pushed to the leader). */
    synchronized void recordEvents() {
        recordEvents = true;
    }

    /** Keys stored and evicted since the last call: {stored, evicted}. */
    synchronized long[][] drainEvents() {
        long[][] out = {
            stored.stream().mapToLong(Long::longValue).toArray(),
            evicted.stream().mapToLong(Long::longValue).toArray()
        };
        stored.clear();
        evicted.clear();
        return out;
    }
}
