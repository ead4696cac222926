package dev.mooncakej.prefill;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvstore.client.SsdTier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.IntToLongFunction;

/**
 * The prefill worker's local prefix cache: block key -> KV block id. The pool holds one reference on
 * each cached block; requests that reuse a block take their own. Blocks nobody else references are
 * evicted least recently used first when the engine needs room. Thread-safe (synchronized).
 */
final class PrefixBlockPool {
    private final PagedKvCache cache;
    private final LinkedHashMap<Long, Integer> blocks = new LinkedHashMap<>(1024, 0.75f, true); // access order = LRU
    private final ArrayList<Long> stored = new ArrayList<>();
    private final ArrayList<Integer> storedIds = new ArrayList<>();
    private final ArrayList<Long> evicted = new ArrayList<>();
    private boolean recordEvents;
    private final SsdTier ssd;
    private int lastPromoted;

    PrefixBlockPool(PagedKvCache cache) {
        this(cache, null);
    }

    /** @param ssd where evicted blocks go instead of being dropped (null: dropped) */
    PrefixBlockPool(PagedKvCache cache, SsdTier ssd) {
        this.cache = cache;
        this.ssd = ssd;
    }

    /**
     * Ids of the longest cached prefix of {@code keys} (at most {@code limit} blocks), marked recently
     * used. Blocks past the DRAM run that the SSD tier holds are read back into free blocks (promoted)
     * and cached again, as far as there is room.
     */
    synchronized int[] longestPrefix(long[] keys, int limit) {
        int n = 0;
        int[] ids = new int[Math.min(keys.length, limit)];
        while (n < ids.length) {
            Integer id = blocks.get(keys[n]);
            if (id == null) break;
            ids[n++] = id;
        }
        int dram = n;
        while (ssd != null && n < ids.length && ssd.contains(keys[n])) {
            int id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK && evictUnless(1, ids, n) > 0) id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK) break;
            if (!ssd.load(keys[n], cache.block(id))) {
                cache.release(id);
                break;
            }
            blocks.put(keys[n], id); // the pool's reference is the allocation's
            if (recordEvents) {
                stored.add(keys[n]);
                storedIds.add(id);
            }
            ids[n++] = id;
        }
        lastPromoted = n - dram;
        return Arrays.copyOf(ids, n);
    }

    /** Blocks the last {@link #longestPrefix} read back from the SSD tier (for a meter: concurrent calls may mix). */
    synchronized int lastPromoted() {
        return lastPromoted;
    }

    /**
     * Reads blocks of the SSD tier back into DRAM (a remote reader asked: other workers read DRAM
     * replicas only), each only if the tier holds it at the given offset and there is room without
     * evicting what is pinned; returns how many were promoted.
     */
    synchronized int promote(long[] keys, long[] ssdOffsets) {
        if (ssd == null) return 0;
        int n = 0;
        for (int i = 0; i < keys.length; i++) {
            if (blocks.containsKey(keys[i])) continue;
            if (ssd.offsetOf(keys[i]) != ssdOffsets[i]) continue;
            int id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK && evict(1) > 0) id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK) break;
            if (!ssd.load(keys[i], cache.block(id))) {
                cache.release(id);
                continue;
            }
            blocks.put(keys[i], id);
            if (recordEvents) {
                stored.add(keys[i]);
                storedIds.add(id);
            }
            n++;
        }
        return n;
    }

    /** Whether this worker holds {@code key} in DRAM or on its SSD tier. */
    synchronized boolean holds(long key) {
        return blocks.containsKey(key) || (ssd != null && ssd.contains(key));
    }

    /** Caches a computed full block under its key (takes a reference); keeps the first one on a race. */
    synchronized void put(long key, int blockId) {
        if (blocks.containsKey(key)) return;
        cache.retain(blockId);
        blocks.put(key, blockId);
        if (recordEvents) {
            stored.add(key);
            storedIds.add(blockId);
            Runnable s = onStored;
            if (s != null) s.run();
        }
    }

    private volatile Runnable onStored;

    /**
     * Runs {@code r} (quick, non-blocking) whenever a computed block enters the recorded events: the
     * reporter pushes them to the store master at once instead of on its next tick.
     */
    void onStored(Runnable r) {
        onStored = r;
    }

    /** Pins readers hold (pin id -> blocks retained, and when the pin lapses). */
    private final Map<Long, int[]> pins = new HashMap<>();

    private final Map<Long, Long> pinExpiry = new HashMap<>();

    /**
     * Pins the leading blocks of {@code keys} that this pool holds at the given offsets (a reader is
     * about to copy them): each gets a reference, so eviction passes it by, until {@link #unpin} or
     * {@code expiresAtNanos}. Returns how many leading blocks were pinned.
     */
    synchronized int pin(long pinId, long[] keys, long[] offsets, IntToLongFunction offsetOf, long expiresAtNanos) {
        sweepPins(System.nanoTime());
        if (pins.containsKey(pinId)) return 0;
        int n = 0;
        int[] ids = new int[keys.length];
        while (n < keys.length) {
            Integer id = blocks.get(keys[n]);
            if (id == null || offsetOf.applyAsLong(id) != offsets[n]) break;
            cache.retain(id);
            ids[n++] = id;
        }
        if (n > 0) {
            pins.put(pinId, Arrays.copyOf(ids, n));
            pinExpiry.put(pinId, expiresAtNanos);
        }
        return n;
    }

    synchronized void unpin(long pinId) {
        int[] ids = pins.remove(pinId);
        pinExpiry.remove(pinId);
        if (ids != null) for (int id : ids) cache.release(id);
    }

    synchronized int pinned() {
        return pins.size();
    }

    private void sweepPins(long now) {
        for (var it = pinExpiry.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            if (now - e.getValue() < 0) continue;
            it.remove();
            for (int id : pins.remove(e.getKey())) cache.release(id);
        }
    }

    /**
     * Evicts up to {@code wanted} unreferenced blocks, oldest first (each written to the SSD tier first,
     * if there is one); returns how many were freed.
     */
    synchronized int evict(int wanted) {
        return evictUnless(wanted, new int[0], 0);
    }

    private int evictUnless(int wanted, int[] keep, int keepCount) {
        sweepPins(System.nanoTime());
        int freed = 0;
        for (Iterator<Map.Entry<Long, Integer>> it = blocks.entrySet().iterator(); it.hasNext() && freed < wanted; ) {
            Map.Entry<Long, Integer> e = it.next();
            if (cache.refCount(e.getValue()) == 1 && !contains(keep, keepCount, e.getValue())) { // only we hold it
                if (ssd != null) {
                    try {
                        ssd.store(e.getKey(), cache.block(e.getValue())); // demoted, not dropped
                    } catch (RuntimeException ignored) {
                        // a failing disk only loses the block, as without the tier
                    }
                }
                cache.release(e.getValue());
                if (recordEvents) evicted.add(e.getKey());
                it.remove();
                freed++;
            }
        }
        return freed;
    }

    private static boolean contains(int[] ids, int n, int id) {
        for (int i = 0; i < n; i++) if (ids[i] == id) return true;
        return false;
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

    /** Keys stored (with their block ids) and evicted since the last call. */
    synchronized Events drainEvents() {
        Events out = new Events(
                stored.stream().mapToLong(Long::longValue).toArray(),
                storedIds.stream().mapToInt(Integer::intValue).toArray(),
                evicted.stream().mapToLong(Long::longValue).toArray());
        stored.clear();
        storedIds.clear();
        evicted.clear();
        return out;
    }

    /**
     * Every cached key with its block id (a full report, e.g. to a new store master), and the event
     * lists cleared: what is stored or evicted after this comes with the next drain.
     */
    synchronized Events snapshotAndReset() {
        recordEvents = true;
        stored.clear();
        storedIds.clear();
        evicted.clear();
        long[] keys = new long[blocks.size()];
        int[] ids = new int[blocks.size()];
        int i = 0;
        for (var e : blocks.entrySet()) {
            keys[i] = e.getKey();
            ids[i++] = e.getValue();
        }
        return new Events(keys, ids, new long[0]);
    }

    /** Cache changes: keys stored at block ids, keys evicted. */
    record Events(long[] stored, int[] storedIds, long[] evicted) {
        boolean isEmpty() {
            return stored.length == 0 && evicted.length == 0;
        }
    }
}
