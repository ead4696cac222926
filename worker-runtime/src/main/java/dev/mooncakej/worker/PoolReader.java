package dev.mooncakej.worker;

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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads a run of KV blocks out of the KV pool into blocks of this worker's own, by their keys: where
 * they lie comes from the store master (under a read lease); a replica in another worker's prefix
 * cache is pinned at its holder while it is copied, one in pool memory the master allocated is kept
 * by the lease; each block is READ through the transfer engine (copied in place when it lies in this
 * worker's own pool DRAM). A prefill worker fetches a prompt's prefix with it; a decode worker takes
 * a moved stream's history with it. Plain Java: the callers own the blocks and what they do next.
 */
public final class PoolReader {
    private static final Logger LOG = LoggerFactory.getLogger(PoolReader.class);

    /** Lookups after the first while the store master does not yet know every block asked for. */
    public static final int LOOKUP_RETRIES = 4;

    public static final long LOOKUP_RETRY_MILLIS = 25;

    private final PagedKvCache cache;
    private final TransferEngine transfer;
    private final Duration kvTimeout;

    public PoolReader(PagedKvCache cache, TransferEngine transfer, Duration kvTimeout) {
        this.cache = cache;
        this.transfer = transfer;
        this.kvTimeout = kvTimeout;
    }

    /**
     * Where the leading blocks of {@code wanted} can be read: one replica each ({@code chosen}), as far
     * as a run of readable ones lasts; {@code got} is the master's whole answer (what lies on an SSD
     * tier past the run, say).
     */
    public record Sources(long[] wanted, StoreReplicas got, List<StoreReplica> chosen) {
        /** Whether the run ended before the blocks the master knows did. */
        public boolean endsShort() {
            return chosen.size() < Math.min(wanted.length, got.replicas().size());
        }
    }

    /** The replicas pinned at their holders: how many leading chosen blocks may be read, and the pins to lift. */
    public record Pinned(int usable, Map<String, Long> pins) {}

    /** How many leading blocks of a lookup have a replica anywhere. */
    private static int located(StoreReplicas got) {
        int n = 0;
        while (n < got.replicas().size() && !got.replicas().get(n).isEmpty()) n++;
        return n;
    }

    /**
     * Asks the store master where {@code wanted} lie (again, briefly, while it does not know them
     * all: a holder's report may still be on its way) and picks one DRAM replica of a block's length
     * each, preferring this worker's own pool (a copy), else one source for as long a run as it has.
     * Null when the master did not answer.
     */
    public Sources locate(StoreClient store, long[] wanted, long reservation) {
        return locate(store, wanted, reservation, LOOKUP_RETRIES);
    }

    /**
     * As above, asking again at most {@code retries} times (0: a reader that computes what is missing
     * and gains nothing by waiting, as a decode worker taking a stream whose old worker died mid-write).
     */
    public Sources locate(StoreClient store, long[] wanted, long reservation, int retries) {
        StoreReplicas got = store.get(wanted);
        for (int attempt = 1; got != null && attempt <= retries && located(got) < wanted.length; attempt++) {
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
            LOG.info("reservation {}: the store master did not answer; nothing read from the pool", reservation);
            return null;
        }
        long blockBytes = cache.layout().blockBytes();
        List<StoreReplica> chosen = new ArrayList<>();
        String prev = null;
        for (int i = 0; i < wanted.length && i < got.replicas().size(); i++) {
            StoreReplica pick = null;
            for (StoreReplica r : got.replicas().get(i)) {
                if (r.length() != blockBytes || !"dram".equals(r.tier())) continue; // SSD ones only their owner reads
                // its own prefix cache is local already; its own pool DRAM is copied in place
                if (StoreClient.transferSegment(r.segment()).equals(transfer.name()) && !ownPool(r)) continue;
                if (pick == null || ownPool(r) || (r.segment().equals(prev) && !ownPool(pick)))
                    pick = r; // its own pool first (a copy), else one source for as long a run as it has
            }
            if (pick == null) break;
            chosen.add(pick);
            prev = pick.segment();
        }
        return new Sources(wanted, got, chosen);
    }

    /**
     * Pins the chosen replicas that lie in other workers' prefix caches, per holder, so they cannot be
     * evicted while copied; the run ends where a pin fell short (or a holder did not answer).
     */
    public Pinned pin(Sources s, long reservation) {
        List<StoreReplica> chosen = s.chosen();
        int usable = chosen.size();
        Map<String, List<Integer>> byHolder = new LinkedHashMap<>();
        for (int i = 0; i < chosen.size(); i++) {
            if (!StoreClient.allocated(chosen.get(i).segment()))
                byHolder.computeIfAbsent(chosen.get(i).segment(), h -> new ArrayList<>())
                        .add(i);
        }
        Map<String, Long> pins = new LinkedHashMap<>();
        for (var e : byHolder.entrySet()) {
            List<Integer> idx = e.getValue();
            if (idx.getFirst() >= usable) continue;
            int n = Math.min(idx.size(), PoolPin.MAX_KEYS);
            long pinId = ThreadLocalRandom.current().nextLong();
            long[] pk = new long[n], po = new long[n];
            for (int j = 0; j < n; j++) {
                pk[j] = s.wanted()[idx.get(j)];
                po[j] = chosen.get(idx.get(j)).offset();
            }
            int pinned;
            try {
                pinned = Byte.toUnsignedInt(
                        transfer.notify(e.getKey(), PoolPin.pin(pinId, pk, po).encode(), kvTimeout));
                pins.put(e.getKey(), pinId);
            } catch (IOException | RuntimeException ex) {
                LOG.info(
                        "reservation {}: the holder {} of the blocks did not answer ({}); reading up to there",
                        reservation,
                        e.getKey(),
                        ex.getMessage());
                pinned = 0;
            }
            if (pinned < idx.size()) usable = Math.min(usable, idx.get(pinned));
        }
        return new Pinned(usable, pins);
    }

    /**
     * Reads chosen block {@code i} into this worker's block {@code ids[i]} for each {@code i} below
     * {@code ids.length} (at most {@code p.usable()}), then lifts the pins (always, whatever happened).
     * Returns how many leading blocks arrived whole; the caller recomputes (or gives up on) the rest.
     */
    public int read(Sources s, Pinned p, int[] ids, long reservation) {
        if (ids.length > p.usable())
            throw new IllegalArgumentException(ids.length + " blocks to read: at most " + p.usable() + " are usable");
        long blockBytes = cache.layout().blockBytes();
        List<TransferRequest> reads = new ArrayList<>();
        List<Integer> remote = new ArrayList<>(); // which block each read fills
        boolean[] arrived = new boolean[ids.length];
        List<StoreReplica> chosen = s.chosen();
        int ok = 0;
        try {
            for (int i = 0; i < ids.length; i++) {
                StoreReplica from = chosen.get(i);
                if (ownPool(from)) { // a block written into this worker's pool DRAM (by a decode worker, say)
                    MemorySegment mine = transfer.segment();
                    if (from.offset() >= 0 && from.offset() <= mine.byteSize() - blockBytes) {
                        MemorySegment.copy(mine, from.offset(), cache.block(ids[i]), 0, blockBytes);
                        arrived[i] = true;
                    }
                    continue;
                }
                remote.add(i);
                reads.add(new TransferRequest(
                        TransferRequest.Opcode.READ,
                        transfer.offsetOf(cache.block(ids[i])),
                        StoreClient.transferSegment(from.segment()),
                        from.offset(),
                        blockBytes));
            }
            for (var e : p.pins().keySet()) transfer.openSegment(e);
            for (int i : remote)
                transfer.openSegment(StoreClient.transferSegment(chosen.get(i).segment()));
            String problem = null;
            if (!reads.isEmpty()) {
                TransferBatch b = transfer.submit(reads).done().join();
                for (int j = 0; j < reads.size(); j++)
                    arrived[remote.get(j)] = b.status(j) == TransferBatch.Status.COMPLETED;
                problem = b.firstProblem();
            }
            while (ok < ids.length && arrived[ok]) ok++;
            if (ok < ids.length) {
                LOG.info(
                        "reservation {}: {} of {} pool blocks arrived ({})",
                        reservation,
                        ok,
                        ids.length,
                        problem == null ? "a replica outside this worker's segment" : problem);
            }
        } catch (IllegalArgumentException e) { // a source this worker's metadata does not know
            LOG.info("reservation {}: {}; nothing read from the pool", reservation, e.getMessage());
            ok = 0;
        } finally {
            unpin(p);
        }
        return ok;
    }

    /** Lifts the pins, off this thread (best effort: an unanswered unpin lapses by itself). */
    private void unpin(Pinned p) {
        for (var e : p.pins().entrySet()) {
            Thread.ofVirtual().start(() -> {
                try {
                    transfer.notify(e.getKey(), PoolPin.unpin(e.getValue()).encode(), kvTimeout);
                } catch (IOException | RuntimeException ignored) {
                    // the pin lapses after the holder's timeout
                }
            });
        }
    }

    /** A replica the master allocated in this worker's own pool DRAM (same process: copied, not read). */
    public boolean ownPool(StoreReplica r) {
        return r.segment().equals(transfer.name() + StoreClient.POOL_SUFFIX);
    }
}
