package dev.mooncakej.kvstore;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.LongSupplier;

/**
 * The store master: block key to replicas in worker-contributed segments. Metadata only (the bytes
 * move between workers through the transfer engine), one lock, time from an injected clock.
 *
 * <ul>
 *   <li>Two-phase put: {@link #putStart} allocates replicas (PROCESSING), the writer moves the bytes,
 *       {@link #putEnd} makes them COMPLETE or {@link #putRevoke} frees them; a put never ended is
 *       reclaimed after {@code putTimeoutMillis}.
 *   <li>{@link #get} and {@link #exists} grant a read lease: while it runs, {@link #remove} refuses
 *       (unless forced) and eviction skips the block.
 *   <li>Eviction, per tier, when its used fraction passes the high watermark or a put finds no room:
 *       frees at least {@code max(r, used - hw + r)} of the tier, least recently used first, never a
 *       leased, unfinished or hard-pinned block; soft-pinned ones only in a second pass, if the first
 *       freed less than {@code max(target / 2, used - hw)}.
 *   <li>Liveness: a client that has not called {@link #heartbeat} for {@code clientLiveTtlMillis} has its
 *       segments unmounted and their replicas dropped.
 * </ul>
 */
public final class StoreMaster {
    /** What a put start did. */
    public enum PutStatus {
        STARTED,
        /** The key is stored or being stored: nothing to do. */
        EXISTS,
        /** No segment of the tier has room, even after eviction. */
        NO_SPACE
    }

    /** What a remove did. */
    public enum RemoveStatus {
        REMOVED,
        NOT_FOUND,
        /** A reader holds a lease on it (or it is being written): not removed. */
        BUSY
    }

    public record PutStart(PutStatus status, List<Replica> replicas) {}

    /** The readable replicas of a block and until when the caller's lease holds them. */
    public record Get(List<Replica> replicas, long leaseUntilMillis) {}

    private static final class Entry {
        /**
         * Replicas the workers hold in their own memory (their prefix caches): reported, never allocated or evicted
         * here.
         */
        final List<Replica> held = new ArrayList<>(1);

        final long key;
        final long length;
        final Tier tier;
        final List<Replica> replicas = new ArrayList<>(2);
        boolean complete;
        long putStartedAt;
        long leaseUntil;
        long softPinUntil;
        boolean hardPin;
        long lastUse;
        /** What {@link #get} hands out, built on first read after a change (reads far outnumber changes). */
        List<Replica> view;

        Entry(long key, long length, Tier tier) {
            this.key = key;
            this.length = length;
            this.tier = tier;
        }
    }

    private final StoreConfig config;
    private final LongSupplier clock;
    private final SplittableRandom random;
    private final Map<Long, Entry> entries = new HashMap<>();
    private final Map<String, SegmentSpace> segments = new LinkedHashMap<>();
    private final Map<String, Long> clientsSeen = new HashMap<>();
    /** Keys whose last allocated replica went (evicted, removed, reclaimed, unmounted) since the last drain. */
    private final List<Long> poolRemoved = new ArrayList<>();

    private final List<Long> poolAdded = new ArrayList<>();
    private long evictions, reclaimedPuts, busyRemovals;

    /** @param clockMillis milliseconds (wall time in a service, a test's own clock in tests) */
    public StoreMaster(StoreConfig config, LongSupplier clockMillis) {
        this.config = config;
        this.clock = clockMillis;
        this.random = new SplittableRandom(config.seed());
    }

    public StoreConfig config() {
        return config;
    }

    // ---- segments and clients ----

    /**
     * A client contributes a segment ({@code capacity} bytes from {@code base} in its address space). Idempotent for
     * the same owner.
     */
    public synchronized void mountSegment(String client, String segment, Tier tier, long base, long capacity) {
        if (client == null || segment == null)
            throw new IllegalArgumentException("mount needs a client and a segment name");
        if (capacity <= 0 || base < 0)
            throw new IllegalArgumentException("segment " + segment + ": base " + base + ", capacity " + capacity
                    + ": expected base >= 0, capacity > 0");
        SegmentSpace s = segments.get(segment);
        if (s != null) {
            if (!s.client.equals(client) || s.tier != tier || s.base != base || s.capacity != capacity) {
                throw new IllegalArgumentException(
                        "segment " + segment + " is mounted by " + s.client + " with another shape");
            }
        } else {
            segments.put(segment, new SegmentSpace(segment, client, tier, base, capacity));
        }
        clientsSeen.put(client, clock.getAsLong());
    }

    /** Drops a segment and every replica in it; returns how many replicas went. */
    public synchronized int unmountSegment(String segment) {
        if (segments.remove(segment) == null) return 0;
        int dropped = 0;
        for (Iterator<Entry> it = entries.values().iterator(); it.hasNext(); ) {
            Entry e = it.next();
            boolean a = e.replicas.removeIf(r -> r.segment().equals(segment));
            boolean b = e.held.removeIf(r -> r.segment().equals(segment));
            if (a || b) e.view = null;
            if (a || b) dropped++;
            if (a && e.replicas.isEmpty()) poolRemoved.add(e.key);
            if (e.replicas.isEmpty() && e.held.isEmpty()) it.remove();
        }
        return dropped;
    }

    public synchronized void heartbeat(String client) {
        clientsSeen.put(client, clock.getAsLong());
    }

    /** Unmounts the segments of every client silent for the liveness TTL; returns those clients. */
    public synchronized List<String> expireClients() {
        long now = clock.getAsLong();
        List<String> gone = new ArrayList<>();
        for (var e : clientsSeen.entrySet())
            if (now - e.getValue() > config.clientLiveTtlMillis()) gone.add(e.getKey());
        for (String c : gone) {
            clientsSeen.remove(c);
            for (String seg : segments.values().stream()
                    .filter(s -> s.client.equals(c))
                    .map(s -> s.name)
                    .toList()) unmountSegment(seg);
        }
        return gone;
    }

    // ---- replicas a worker holds in its own memory ----

    /**
     * A worker reports that its own memory (e.g. the KV slab of its prefix cache) holds {@code key}
     * at [offset, offset + length) of {@code segment}: a readable replica the master neither
     * allocated nor evicts (the worker evicts it and reports {@link #released}). The segment must be
     * mounted by that client.
     */
    public synchronized void held(String client, String segment, long key, long offset, long length, Tier tier) {
        SegmentSpace s = segments.get(segment);
        if (s == null || !s.client.equals(client))
            throw new IllegalArgumentException("segment " + segment + " is not mounted by " + client);
        if (offset < s.base || length <= 0 || offset > s.base + s.capacity - length) {
            throw new IllegalArgumentException(
                    "held range [" + offset + ", +" + length + ") of key " + key + " is outside segment " + segment);
        }
        Entry e = entries.computeIfAbsent(key, k -> {
            Entry n = new Entry(k, length, tier);
            n.complete = true;
            return n;
        });
        if (e.held.removeIf(r -> r.segment().equals(segment))) s.heldBytes -= length;
        e.held.add(new Replica(segment, offset, length, tier, ReplicaState.COMPLETE));
        e.view = null;
        s.heldBytes += length;
        e.lastUse = clock.getAsLong();
    }

    /** A worker no longer holds {@code key} in {@code segment}. */
    public synchronized void released(String segment, long key) {
        Entry e = entries.get(key);
        if (e == null) return;
        if (e.held.removeIf(r -> r.segment().equals(segment))) {
            e.view = null;
            SegmentSpace s = segments.get(segment);
            if (s != null) s.heldBytes -= e.length;
        }
        if (e.held.isEmpty() && e.replicas.isEmpty()) entries.remove(key);
    }

    /** Whether any segment of {@code client} holds {@code key} (in any tier). */
    public synchronized boolean heldBy(String client, long key) {
        Entry e = entries.get(key);
        if (e == null) return false;
        for (Replica r : e.held) {
            SegmentSpace s = segments.get(r.segment());
            if (s != null && s.client.equals(client)) return true;
        }
        return false;
    }

    /** Mounts a segment whose memory its worker manages itself: only {@link #held} replicas live in it. */
    public synchronized void mountHeldSegment(String client, String segment, Tier tier, long base, long capacity) {
        mountSegment(client, segment, tier, base, capacity);
        segments.get(segment).heldOnly = true;
    }

    // ---- two-phase put ----

    /** Blocks a reader's lease holds now (each lapses by its TTL; a soak checks none outlives it). */
    public synchronized int leasedBlocks() {
        long now = clock.getAsLong();
        int n = 0;
        for (Entry e : entries.values()) if (e.leaseUntil > now) n++;
        return n;
    }

    /** Puts started and neither ended nor revoked (a writer that died is reclaimed by the put timeout). */
    public synchronized int unfinishedPuts() {
        int n = 0;
        for (Entry e : entries.values()) if (!e.complete) n++;
        return n;
    }

    public synchronized PutStart putStart(long key, long length, ReplicateConfig cfg) {
        if (length <= 0)
            throw new IllegalArgumentException("put of " + length + " bytes for key " + key + ": expected > 0");
        if (entries.containsKey(key)) return new PutStart(PutStatus.EXISTS, List.of());
        long now = clock.getAsLong();
        List<Replica> got = allocate(length, cfg);
        if (got.isEmpty()) {
            evict(cfg.tier(), length);
            got = allocate(length, cfg);
        }
        if (got.isEmpty()) return new PutStart(PutStatus.NO_SPACE, List.of());
        Entry e = new Entry(key, length, cfg.tier());
        e.replicas.addAll(got);
        e.view = null;
        e.putStartedAt = now;
        e.lastUse = now;
        e.hardPin = cfg.hardPin();
        if (cfg.softPin()) e.softPinUntil = now + config.softPinTtlMillis();
        entries.put(key, e);
        return new PutStart(PutStatus.STARTED, List.copyOf(got));
    }

    /** The bytes are written: the replicas become readable. False when no put of {@code key} is in progress. */
    public synchronized boolean putEnd(long key) {
        Entry e = entries.get(key);
        if (e == null || e.complete) return false;
        e.replicas.replaceAll(r -> r.withState(ReplicaState.COMPLETE));
        e.view = null;
        e.complete = true;
        poolAdded.add(key);
        e.lastUse = clock.getAsLong();
        return true;
    }

    /** The write failed: its space is freed. False when no put of {@code key} is in progress. */
    public synchronized boolean putRevoke(long key) {
        Entry e = entries.get(key);
        if (e == null || e.complete) return false;
        drop(e);
        return true;
    }

    // ---- reads ----

    /** The complete replicas of {@code key} under a fresh read lease, or null when it is not stored. */
    public synchronized Get get(long key) {
        Entry e = lease(key);
        if (e == null) return null;
        List<Replica> v = e.view;
        if (v == null) {
            List<Replica> all = new ArrayList<>(e.replicas.size() + e.held.size());
            all.addAll(e.held); // a worker's own memory first: its prefix cache is the hottest copy
            all.addAll(e.replicas);
            v = e.view = List.copyOf(all);
        }
        return new Get(v, e.leaseUntil);
    }

    /** The readable entry of {@code key} with its lease renewed, or null. */
    private Entry lease(long key) {
        Entry e = entries.get(key);
        if (e == null || !e.complete) return null;
        long now = clock.getAsLong();
        e.leaseUntil = Math.max(e.leaseUntil, now + config.leaseTtlMillis());
        e.lastUse = now;
        return e;
    }

    /** Whether {@code key} is stored; a yes grants a read lease too (as Mooncake's ExistKey does). */
    public synchronized boolean exists(long key) {
        return lease(key) != null;
    }

    /** How many leading keys of {@code keys} are stored (a prefix lookup), leasing each of them. */
    public synchronized int longestPrefix(long[] keys) {
        int n = 0;
        while (n < keys.length && get(keys[n]) != null) n++;
        return n;
    }

    // ---- removal ----

    public synchronized RemoveStatus remove(long key, boolean force) {
        Entry e = entries.get(key);
        if (e == null) return RemoveStatus.NOT_FOUND;
        if (!force && (e.leaseUntil > clock.getAsLong() || !e.complete)) {
            busyRemovals++;
            return RemoveStatus.BUSY;
        }
        drop(e);
        return RemoveStatus.REMOVED;
    }

    // ---- batch forms ----

    public synchronized List<PutStart> putStart(long[] keys, long length, ReplicateConfig cfg) {
        List<PutStart> out = new ArrayList<>(keys.length);
        for (long k : keys) out.add(putStart(k, length, cfg));
        return out;
    }

    public synchronized boolean[] putEnd(long[] keys) {
        boolean[] out = new boolean[keys.length];
        for (int i = 0; i < keys.length; i++) out[i] = putEnd(keys[i]);
        return out;
    }

    public synchronized boolean[] putRevoke(long[] keys) {
        boolean[] out = new boolean[keys.length];
        for (int i = 0; i < keys.length; i++) out[i] = putRevoke(keys[i]);
        return out;
    }

    public synchronized List<Get> get(long[] keys) {
        List<Get> out = new ArrayList<>(keys.length);
        for (long k : keys) out.add(get(k));
        return out;
    }

    public synchronized boolean[] exists(long[] keys) {
        boolean[] out = new boolean[keys.length];
        for (int i = 0; i < keys.length; i++) out[i] = exists(keys[i]);
        return out;
    }

    public synchronized List<RemoveStatus> remove(long[] keys, boolean force) {
        List<RemoveStatus> out = new ArrayList<>(keys.length);
        for (long k : keys) out.add(remove(k, force));
        return out;
    }

    // ---- housekeeping ----

    /** Reclaims puts that never ended and evicts every tier over its high watermark; returns blocks freed. */
    public synchronized int tick() {
        long now = clock.getAsLong();
        int freed = 0;
        for (Iterator<Entry> it = entries.values().iterator(); it.hasNext(); ) {
            Entry e = it.next();
            if (!e.complete && now - e.putStartedAt > config.putTimeoutMillis()) {
                release(e);
                it.remove();
                reclaimedPuts++;
                freed++;
            }
        }
        for (Tier t : Tier.values()) if (usedFraction(t) > config.highWatermark()) freed += evict(t, 0);
        return freed;
    }

    /**
     * One eviction round in {@code tier} (Mooncake's BatchEvict): frees at least the target fraction
     * (and at least {@code needBytes}), least recently used first; returns blocks evicted.
     */
    synchronized int evict(Tier tier, long needBytes) {
        long capacity = capacity(tier);
        if (capacity == 0) return 0;
        double used = usedFraction(tier), hw = config.highWatermark(), r = config.evictionRatio();
        double target = Math.max(r, used - hw + r), lower = Math.max(target / 2, used - hw);
        long targetBytes = Math.max((long) Math.ceil(target * capacity), needBytes);
        long lowerBytes = Math.max((long) Math.ceil(lower * capacity), needBytes);
        long now = clock.getAsLong();
        List<Entry> candidates = new ArrayList<>();
        for (Entry e : entries.values()) {
            if (e.tier == tier && e.complete && !e.hardPin && e.leaseUntil <= now && !e.replicas.isEmpty())
                candidates.add(e);
        }
        candidates.sort(Comparator.comparingLong(e -> e.lastUse));
        long freed = 0;
        int n = 0;
        for (Entry e : candidates) { // pass 1: not soft-pinned
            if (freed >= targetBytes) break;
            if (e.softPinUntil > now) continue;
            freed += bytes(e);
            drop(e);
            n++;
        }
        if (freed < lowerBytes) { // pass 2: soft-pinned ones too
            for (Entry e : candidates) {
                if (freed >= lowerBytes) break;
                if (!entries.containsKey(e.key)) continue;
                freed += bytes(e);
                drop(e);
                n++;
            }
        }
        evictions += n;
        return n;
    }

    private static long bytes(Entry e) {
        return e.length * e.replicas.size();
    }

    // ---- allocation ----

    private List<Replica> allocate(long length, ReplicateConfig cfg) {
        List<SegmentSpace> order = candidates(cfg);
        List<Replica> got = new ArrayList<>(cfg.replicas());
        for (SegmentSpace s : order) {
            if (got.size() == cfg.replicas()) break;
            long off = s.allocate(length);
            if (off >= 0) got.add(new Replica(s.name, off, length, s.tier, ReplicaState.PROCESSING));
        }
        return got;
    }

    /** Segments of the tier to try, in order: preferred ones, then by the strategy; never an avoided one. */
    private List<SegmentSpace> candidates(ReplicateConfig cfg) {
        List<SegmentSpace> all = new ArrayList<>();
        for (SegmentSpace s : segments.values())
            if (s.tier == cfg.tier() && !s.heldOnly && !cfg.avoided().contains(s.name)) all.add(s);
        List<SegmentSpace> out = new ArrayList<>(all.size());
        for (String p : cfg.preferred()) {
            SegmentSpace s = segments.get(p);
            if (s != null
                    && s.tier == cfg.tier()
                    && !s.heldOnly
                    && !cfg.avoided().contains(s.name)) out.add(s);
        }
        all.removeAll(out);
        if (all.isEmpty()) return out;
        switch (config.allocation()) {
            case RANDOM -> {
                int start = random.nextInt(all.size());
                for (int i = 0; i < all.size(); i++) out.add(all.get((start + i) % all.size()));
            }
            case FREE_RATIO_FIRST -> {
                int sample = Math.min(all.size(), 6 * cfg.replicas());
                int start = random.nextInt(all.size());
                List<SegmentSpace> picked = new ArrayList<>(sample);
                for (int i = 0; i < sample; i++) picked.add(all.get((start + i) % all.size()));
                picked.sort(Comparator.comparingDouble(SegmentSpace::freeRatio).reversed());
                out.addAll(picked);
                for (SegmentSpace s : all) if (!picked.contains(s)) out.add(s); // fall back to the rest
            }
        }
        return out;
    }

    /** Frees the replicas the master allocated; the entry stays while a worker still holds the block. */
    private void drop(Entry e) {
        release(e);
        if (!e.replicas.isEmpty() && e.complete) poolRemoved.add(e.key);
        e.replicas.clear();
        e.view = null;
        if (e.held.isEmpty()) entries.remove(e.key);
    }

    private void release(Entry e) {
        for (Replica r : e.replicas) {
            SegmentSpace s = segments.get(r.segment());
            if (s != null) s.release(r.offset(), r.length());
        }
    }

    // ---- what it holds ----

    /**
     * Keys that became readable in allocated memory and keys whose allocated replicas all went, since
     * the last call (what the scheduler's view of the pool follows); a key may be in both, in that order.
     */
    public synchronized PoolChanges drainPoolChanges() {
        PoolChanges c = new PoolChanges(
                poolAdded.stream().mapToLong(Long::longValue).toArray(),
                poolRemoved.stream().mapToLong(Long::longValue).toArray());
        poolAdded.clear();
        poolRemoved.clear();
        return c;
    }

    public record PoolChanges(long[] added, long[] removed) {}

    /** One segment's use, for per-worker meters. */
    public record SegmentUse(String segment, String client, Tier tier, long capacity, long used, boolean heldOnly) {}

    public synchronized List<SegmentUse> segmentUse() {
        List<SegmentUse> out = new ArrayList<>(segments.size());
        for (SegmentSpace s : segments.values())
            out.add(new SegmentUse(s.name, s.client, s.tier, s.capacity, s.used(), s.heldOnly));
        return out;
    }

    public synchronized long capacity(Tier tier) {
        long c = 0;
        for (SegmentSpace s : segments.values()) if (s.tier == tier && !s.heldOnly) c += s.capacity;
        return c;
    }

    public synchronized long used(Tier tier) {
        long u = 0;
        for (SegmentSpace s : segments.values()) if (s.tier == tier && !s.heldOnly) u += s.used();
        return u;
    }

    private double usedFraction(Tier tier) {
        long c = capacity(tier);
        return c == 0 ? 0 : (double) used(tier) / c;
    }

    public synchronized int size() {
        return entries.size();
    }

    public synchronized List<String> segmentNames() {
        return List.copyOf(segments.keySet());
    }

    public synchronized long evictions() {
        return evictions;
    }

    public synchronized long reclaimedPuts() {
        return reclaimedPuts;
    }

    public synchronized long busyRemovals() {
        return busyRemovals;
    }
}
