package dev.mooncakej.prefill;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvcache.wire.PoolPin;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A prefill worker's prefix fetch from the KV pool: the blocks the conductor counts on that this
 * worker does not hold, read from another worker's prefix cache (pinned there while copied) or from
 * pool memory the store master allocated; blocks another worker keeps on its SSD tier are promoted
 * there (by its owner) for the next request. Out of {@link PrefillService}, which calls it before
 * computing.
 */
final class PrefixFetch {
    private static final Logger LOG = LoggerFactory.getLogger(PrefixFetch.class);

    private final PagedKvCache cache;
    private final PrefixBlockPool pool;
    private final TransferEngine transfer;
    private final PrefillMetrics metrics;
    private final Duration kvTimeout;

    PrefixFetch(
            PagedKvCache cache,
            PrefixBlockPool pool,
            TransferEngine transfer,
            PrefillMetrics metrics,
            Duration kvTimeout) {
        this.cache = cache;
        this.pool = pool;
        this.transfer = transfer;
        this.metrics = metrics;
        this.kvTimeout = kvTimeout;
    }

    /** Lookups after the first while the store master does not yet know every block the conductor counts on. */
    static final int LOOKUP_RETRIES = 4;

    static final long LOOKUP_RETRY_MILLIS = 25;

    /** How many leading blocks of a lookup have a replica anywhere. */
    private static int located(StoreReplicas got) {
        int n = 0;
        while (n < got.replicas().size() && !got.replicas().get(n).isEmpty()) n++;
        return n;
    }

    /**
     * Reads blocks [{@code local.length}, {@code want}) of the prefix from wherever the pool holds them:
     * their places come from the store master (under a read lease); each key's replica is another
     * worker's prefix cache (pinned at that holder first, so it cannot be evicted while copied) or
     * memory the master allocated (a decode worker's pool, kept by the lease); each block is READ
     * through the transfer engine into a block of this worker's own. Returns the local ids followed by
     * the fetched ones, as far as every block arrived whole; anything less is recomputed instead (the
     * blocks that did not make it go back to the pool).
     */
    int[] fetch(StoreClient store, long[] keys, int[] local, int want, long reservation) {
        long t0 = System.nanoTime();
        long[] wanted = Arrays.copyOfRange(keys, local.length, want);
        StoreReplicas got = store.get(wanted);
        // the conductor counts on these blocks because their holder answered its prefill; the holder's
        // report to the master may still be on its way (pushed at once, a few ms): ask again, briefly
        for (int attempt = 1; got != null && attempt <= LOOKUP_RETRIES && located(got) < wanted.length; attempt++) {
            try {
                Thread.sleep(LOOKUP_RETRY_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            StoreReplicas again = store.get(wanted);
            if (again == null) break;
            if (located(again) > located(got))
                LOG.debug(
                        "reservation {}: the store master knew {} more blocks on lookup {}",
                        reservation,
                        located(again) - located(got),
                        attempt + 1);
            got = again;
        }
        if (got == null) {
            LOG.info("reservation {}: the store master did not answer; recomputing the prefix", reservation);
            return local;
        }
        long blockBytes = cache.layout().blockBytes();
        List<StoreReplica> chosen = new ArrayList<>();
        String prev = null;
        for (int i = 0; i < wanted.length && i < got.replicas().size(); i++) {
            StoreReplica pick = null;
            for (StoreReplica r : got.replicas().get(i)) {
                if (r.length() != blockBytes || !"dram".equals(r.tier())) continue; // SSD ones only their owner reads
                // its own prefix cache is the local prefix already; its own pool DRAM is copied in place
                if (StoreClient.transferSegment(r.segment()).equals(transfer.name()) && !ownPool(r)) continue;
                if (pick == null || ownPool(r) || (r.segment().equals(prev) && !ownPool(pick)))
                    pick = r; // its own pool first (a copy), else one source for as long a run as it has
            }
            if (pick == null) {
                promoteAt(wanted, got, i, reservation); // on another worker's SSD: have it read them back
                break;
            }
            chosen.add(pick);
            prev = pick.segment();
        }
        if (chosen.isEmpty()) return local;
        // pin what lies in other workers' prefix caches, per holder; the run ends where a pin fell short
        int usable = chosen.size();
        Map<String, List<Integer>> byHolder = new LinkedHashMap<>();
        for (int i = 0; i < chosen.size(); i++) {
            if (!StoreClient.allocated(chosen.get(i).segment()))
                byHolder.computeIfAbsent(chosen.get(i).segment(), h -> new ArrayList<>())
                        .add(i);
        }
        Map<String, Long> pins = new LinkedHashMap<>();
        for (var e : byHolder.entrySet()) {
            List<Integer> idx =
                    e.getValue().stream().filter(i -> i < chosen.size()).toList();
            if (idx.isEmpty() || idx.getFirst() >= usable) continue;
            int n = Math.min(idx.size(), PoolPin.MAX_KEYS);
            long pinId = ThreadLocalRandom.current().nextLong();
            long[] pk = new long[n], po = new long[n];
            for (int j = 0; j < n; j++) {
                pk[j] = wanted[idx.get(j)];
                po[j] = chosen.get(idx.get(j)).offset();
            }
            int pinned;
            try {
                pinned = Byte.toUnsignedInt(
                        transfer.notify(e.getKey(), PoolPin.pin(pinId, pk, po).encode(), kvTimeout));
                pins.put(e.getKey(), pinId);
            } catch (IOException | RuntimeException ex) {
                LOG.info(
                        "reservation {}: the holder {} of the prefix did not answer ({}); recomputing from there",
                        reservation,
                        e.getKey(),
                        ex.getMessage());
                pinned = 0;
            }
            if (pinned < idx.size()) usable = Math.min(usable, idx.get(pinned));
        }
        List<TransferRequest> reads = new ArrayList<>();
        List<Integer> ids = new ArrayList<>();
        List<Integer> remote = new ArrayList<>(); // which block each read fills
        boolean[] arrived = new boolean[usable];
        for (int i = 0; i < usable; i++) {
            int id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK && pool.evict(usable - i) > 0) {
                id = cache.allocate(); // room from the least recently used cached blocks, as a computed prefill
                // would take
            }
            if (id == PagedKvCache.NO_BLOCK) break;
            ids.add(id);
            StoreReplica from = chosen.get(i);
            if (ownPool(from)) { // a block written into this worker's pool DRAM (by a decode worker, say)
                MemorySegment mine = transfer.segment();
                if (from.offset() >= 0 && from.offset() <= mine.byteSize() - blockBytes) {
                    MemorySegment.copy(mine, from.offset(), cache.block(id), 0, blockBytes);
                    arrived[i] = true;
                }
                continue;
            }
            remote.add(i);
            reads.add(new TransferRequest(
                    TransferRequest.Opcode.READ,
                    transfer.offsetOf(cache.block(id)),
                    StoreClient.transferSegment(from.segment()),
                    from.offset(),
                    blockBytes));
        }
        int ok = 0;
        try {
            for (var e : pins.keySet()) transfer.openSegment(e);
            for (StoreReplica r : chosen.subList(0, Math.min(usable, chosen.size())))
                if (!ownPool(r)) transfer.openSegment(StoreClient.transferSegment(r.segment()));
            String problem = null;
            if (!reads.isEmpty()) {
                TransferBatch b = transfer.submit(reads).done().join();
                for (int j = 0; j < reads.size(); j++)
                    arrived[remote.get(j)] = b.status(j) == TransferBatch.Status.COMPLETED;
                problem = b.firstProblem();
            }
            while (ok < ids.size() && arrived[ok]) ok++;
            if (ok < ids.size()) {
                LOG.info(
                        "reservation {}: {} of {} pool blocks arrived ({}); recomputing the rest",
                        reservation,
                        ok,
                        ids.size(),
                        problem == null ? "a replica outside this worker's segment" : problem);
            }
        } catch (IllegalArgumentException e) { // a source this worker's metadata does not know
            LOG.info("reservation {}: {}; recomputing the prefix", reservation, e.getMessage());
            ok = 0;
        } finally {
            for (var e : pins.entrySet()) {
                Thread.ofVirtual()
                        .start(
                                () -> { // best effort: an unanswered unpin lapses by itself
                                    try {
                                        transfer.notify(
                                                e.getKey(),
                                                PoolPin.unpin(e.getValue()).encode(),
                                                kvTimeout);
                                    } catch (IOException | RuntimeException ignored) {
                                        // the pin lapses after the holder's timeout
                                    }
                                });
            }
        }
        for (int i = ok; i < ids.size(); i++) cache.release(ids.get(i));
        int[] prefix = Arrays.copyOf(local, local.length + ok);
        for (int i = 0; i < ok; i++) prefix[local.length + i] = ids.get(i);
        if (ok > 0) metrics.fetchTime.record(Duration.ofNanos(System.nanoTime() - t0));
        return prefix;
    }

    /** A replica the master allocated in this worker's own pool DRAM (same process: copied, not read). */
    private boolean ownPool(StoreReplica r) {
        return r.segment().equals(transfer.name() + StoreClient.POOL_SUFFIX);
    }

    /**
     * Where the run of readable replicas ends at blocks another worker keeps on its SSD tier (which
     * only its owner reads), asks that owner to promote them (and the SSD blocks after them at the
     * same owner) into DRAM: this request computes them, the next one fetches them.
     */
    private void promoteAt(long[] wanted, StoreReplicas got, int from, long reservation) {
        String owner = null;
        List<Long> keys = new ArrayList<>(), offsets = new ArrayList<>();
        for (int i = from; i < wanted.length && i < got.replicas().size() && keys.size() < PoolPin.MAX_KEYS; i++) {
            String o = owner;
            StoreReplica r = got.replicas().get(i).stream()
                    .filter(x -> "ssd".equals(x.tier())
                            && !StoreClient.transferSegment(x.segment()).equals(transfer.name())
                            && (o == null || x.segment().equals(o)))
                    .findFirst()
                    .orElse(null);
            if (r == null) break;
            owner = r.segment();
            keys.add(wanted[i]);
            offsets.add(r.offset());
        }
        if (owner == null) return;
        String target = StoreClient.transferSegment(owner);
        long[] k = keys.stream().mapToLong(Long::longValue).toArray();
        long[] o = offsets.stream().mapToLong(Long::longValue).toArray();
        Thread.ofVirtual().start(() -> {
            try {
                transfer.notify(target, PoolPin.promote(k, o).encode(), kvTimeout);
                LOG.info(
                        "reservation {}: asked {} to promote {} blocks from its SSD tier",
                        reservation,
                        target,
                        k.length);
            } catch (IOException | RuntimeException e) {
                LOG.info("reservation {}: {} did not take the promotion ({})", reservation, target, e.getMessage());
            }
        });
    }
}
