package dev.mooncakej.prefill;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvcache.wire.PoolPin;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.worker.PoolReader;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
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
    private final PoolReader reader;

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
        this.reader = new PoolReader(cache, transfer, kvTimeout);
    }

    /**
     * Reads blocks [{@code local.length}, {@code want}) of the prefix from wherever the pool holds them
     * ({@link PoolReader}: their places from the store master, another worker's prefix cache pinned
     * while copied, pool memory the master allocated kept by the lease), each into a block of this
     * worker's own (room made by evicting the least recently used cached blocks, as a computed prefill
     * would). Returns the local ids followed by the fetched ones, as far as every block arrived whole;
     * anything less is recomputed instead (the blocks that did not make it go back to the pool).
     */
    int[] fetch(StoreClient store, long[] keys, int[] local, int want, long reservation) {
        long t0 = System.nanoTime();
        long[] wanted = Arrays.copyOfRange(keys, local.length, want);
        PoolReader.Sources s = reader.locate(store, wanted, reservation);
        if (s == null) return local;
        if (s.endsShort()) promoteAt(wanted, s.got(), s.chosen().size(), reservation);
        if (s.chosen().isEmpty()) return local;
        PoolReader.Pinned p = reader.pin(s, reservation);
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < p.usable(); i++) {
            int id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK && pool.evict(p.usable() - i) > 0) id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK) break;
            ids.add(id);
        }
        int ok = reader.read(s, p, ids.stream().mapToInt(Integer::intValue).toArray(), reservation);
        for (int i = ok; i < ids.size(); i++) cache.release(ids.get(i));
        int[] prefix = Arrays.copyOf(local, local.length + ok);
        for (int i = 0; i < ok; i++) prefix[local.length + i] = ids.get(i);
        if (ok > 0) metrics.fetchTime.record(Duration.ofNanos(System.nanoTime() - t0));
        return prefix;
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
