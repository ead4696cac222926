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
    }

    /** Evicts up to {@code wanted} unreferenced blocks, oldest first; returns how many were freed. */
    synchronized int evict(int wanted) {
        int freed = 0;
        for (Iterator<Map.Entry<Long, Integer>> it = blocks.entrySet().iterator(); it.hasNext() && freed < wanted; ) {
            Map.Entry<Long, Integer> e = it.next();
            if (cache.refCount(e.getValue()) == 1) { // only this pool holds it
                cache.release(e.getValue());
                it.remove();
                freed++;
            }
        }
        return freed;
    }

    synchronized int size() { return blocks.size(); }
}
