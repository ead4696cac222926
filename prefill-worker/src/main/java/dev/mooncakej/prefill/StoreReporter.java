package dev.mooncakej.prefill;

import dev.mooncakej.cluster.LeaderLink;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreMount;
import dev.mooncakej.kvstore.client.SsdTier;
import dev.mooncakej.kvstore.client.StoreClient;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tells the store master (on the leader conductor) what this prefill worker's prefix cache holds: it
 * mounts the KV slab as a worker-managed segment, then pushes the blocks that entered (with their
 * offsets in the segment) and left the cache: at once when a prefill stored computed blocks (the
 * conductor learns of them from the prefill's answer and may send a peer to fetch them next), else
 * every {@value #PUSH_MILLIS} ms, where an empty push is the heartbeat.
 * After any push the master did not take (no leader yet, a new leader, a restarted conductor) the next
 * one is a full report: mount plus every cached block, so a new master rebuilds its state from what the
 * workers hold.
 */
final class StoreReporter implements Runnable {
    private static final Logger LOG = LoggerFactory.getLogger(StoreReporter.class);
    static final long PUSH_MILLIS = 200;

    private final PrefillService service;
    private final String self;
    private final LeaderLink link;
    private volatile boolean running = true;
    private boolean full = true;

    StoreReporter(PrefillService service, String self, LeaderLink link) {
        this.service = service;
        this.self = self;
        this.link = link;
    }

    /** Computed blocks entered the cache: push them now (a peer may be sent to fetch them any moment). */
    private final Semaphore stored = new Semaphore(0);

    /**
     * The least time between two pushes: blocks stored while one is on its way go with the next (a
     * prefill stores its blocks in one burst).
     */
    static final long MIN_GAP_MILLIS = 5;

    @Override
    public void run() {
        service.pool().onStored(stored::release);
        while (running) {
            try {
                stored.tryAcquire(PUSH_MILLIS, TimeUnit.MILLISECONDS);
                Thread.sleep(MIN_GAP_MILLIS);
                stored.drainPermits();
                pushOnce();
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                full = true;
                LOG.warn("reporting the prefix cache to the store master failed: {}", e.getMessage());
            }
        }
    }

    /** One push (tests call it directly). */
    void pushOnce() {
        PrefixBlockPool.Events ev =
                full ? service.pool().snapshotAndReset() : service.pool().drainEvents();
        boolean ok = true;
        if (full) {
            ok = null
                    != link.post(
                            "/internal/store/mount",
                            InternalJson.encode(new StoreMount(
                                    self, service.name(), "dram", service.slabOffset(), service.slabBytes(), true)));
        }
        long[] offsets = new long[ev.storedIds().length];
        for (int i = 0; i < offsets.length; i++) offsets[i] = service.blockOffset(ev.storedIds()[i]);
        ok = ok
                && null
                        != link.post(
                                "/internal/store/held",
                                InternalJson.encode(new StoreHeld(
                                        self,
                                        service.name(),
                                        ev.stored(),
                                        offsets,
                                        service.blockBytes(),
                                        ev.evicted())));
        SsdTier ssd = service.ssd();
        if (ssd != null && ok) { // after the DRAM report: a block demoted in between is held throughout
            String seg = service.name() + StoreClient.SSD_SUFFIX;
            if (full)
                ok = null
                        != link.post(
                                "/internal/store/mount",
                                InternalJson.encode(new StoreMount(self, seg, "ssd", 0, ssd.capacityBytes(), true)));
            SsdTier.Changes c = full ? ssd.snapshot() : ssd.drain();
            ok = ok
                    && null
                            != link.post(
                                    "/internal/store/held",
                                    InternalJson.encode(new StoreHeld(
                                            self, seg, c.stored(), c.offsets(), service.blockBytes(), c.evicted())));
        }
        if (full && ok) LOG.info("store master has this worker's {} cached blocks", ev.stored().length);
        full = !ok;
    }

    void stop() {
        running = false;
    }
}
