package dev.mooncakej.conductor.store;

import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.kvstore.StoreMaster;
import dev.mooncakej.kvstore.Tier;
import dev.mooncakej.scheduler.LiveScheduler;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * The store master in the conductor: built from {@code mooncakej.store.*}, ticked twice a second
 * (puts that never ended reclaimed, tiers over their watermark evicted, silent workers' segments
 * unmounted and their blocks dropped from the scheduler's prefix index too), exported as meters.
 */
@Component
public class StoreHost implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(StoreHost.class);
    static final long TICK_MILLIS = 500;

    private final StoreMaster master;
    private final LiveScheduler scheduler;
    private volatile ScheduledExecutorService ticker;

    private final WorkerMembership membership;
    private final MultiGauge segmentCapacity, segmentUsed;

    public StoreHost(
            StoreProperties props, LiveScheduler scheduler, WorkerMembership membership, MeterRegistry meters) {
        this.membership = membership;
        this.master = new StoreMaster(props.config(), System::currentTimeMillis);
        this.scheduler = scheduler;
        for (Tier t : Tier.values()) {
            String tier = t.name().toLowerCase(Locale.ROOT);
            Gauge.builder("mooncakej.store.capacity.bytes", master, m -> m.capacity(t))
                    .tag("tier", tier)
                    .description("bytes the store master can allocate in, by tier")
                    .register(meters);
            Gauge.builder("mooncakej.store.used.bytes", master, m -> m.used(t))
                    .tag("tier", tier)
                    .description("bytes of the KV pool in use")
                    .register(meters);
        }
        Gauge.builder(
                        "mooncakej.scheduler.fetch.bandwidth.bytes",
                        scheduler,
                        s -> s.core().bandwidthBytesPerSecond())
                .description("bytes per second Algorithm 1 prices a prefix fetch at (measured from fetches)")
                .register(meters);
        Gauge.builder("mooncakej.store.leased.blocks", master, StoreMaster::leasedBlocks)
                .description("blocks under a reader's lease now")
                .register(meters);
        Gauge.builder("mooncakej.store.unfinished.puts", master, StoreMaster::unfinishedPuts)
                .description("puts started and not yet ended or revoked")
                .register(meters);
        Gauge.builder("mooncakej.store.blocks", master, StoreMaster::size)
                .description("blocks the store knows of")
                .register(meters);
        segmentCapacity = MultiGauge.builder("mooncakej.store.segment.capacity.bytes")
                .description("bytes each worker's segment contributes to the pool, by tier")
                .register(meters);
        segmentUsed = MultiGauge.builder("mooncakej.store.segment.used.bytes")
                .description("bytes in use in each worker's segment (allocated, or its cached blocks)")
                .register(meters);
        FunctionCounter.builder("mooncakej.store.evictions", master, StoreMaster::evictions)
                .description("KV pool blocks evicted to make room")
                .register(meters);
        FunctionCounter.builder("mooncakej.store.reclaimed.puts", master, StoreMaster::reclaimedPuts)
                .description("unfinished KV pool puts reclaimed after their lease ended")
                .register(meters);
        FunctionCounter.builder("mooncakej.store.lease.refusals", master, StoreMaster::busyRemovals)
                .description("removals refused because a reader held a lease")
                .register(meters);
    }

    /** A worker reported (its heartbeat): it is alive. */
    void heard(String client) {
        membership.liveness(client, true);
    }

    public StoreMaster master() {
        return master;
    }

    @Override
    public void start() {
        ticker = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().daemon().name("store-tick").unstarted(r));
        ticker.scheduleWithFixedDelay(this::tick, TICK_MILLIS, TICK_MILLIS, TimeUnit.MILLISECONDS);
    }

    /** What the pool holds in memory it allocated goes to the scheduler's view of it. */
    void syncPool() {
        StoreMaster.PoolChanges c = master.drainPoolChanges();
        if (c.added().length > 0 || c.removed().length > 0) scheduler.applyPoolChanges(c.added(), c.removed());
    }

    private void meterSegments() {
        var use = master.segmentUse();
        segmentCapacity.register(
                use.stream().map(u -> MultiGauge.Row.of(tags(u), u.capacity())).toList(), true);
        segmentUsed.register(
                use.stream().map(u -> MultiGauge.Row.of(tags(u), u.used())).toList(), true);
    }

    private static Tags tags(StoreMaster.SegmentUse u) {
        return Tags.of(
                "segment",
                u.segment(),
                "worker",
                u.client(),
                "tier",
                u.tier().name().toLowerCase(Locale.ROOT),
                "kind",
                u.heldOnly() ? "prefix-cache" : "pool");
    }

    void tick() {
        try {
            master.tick();
            syncPool();
            meterSegments();
            List<String> gone = master.expireClients();
            for (String client : gone) {
                LOG.warn(
                        "store client {} stopped heartbeating: its segments are unmounted and its blocks dropped",
                        client);
                scheduler.forget(client);
                membership.liveness(client, false);
            }
            if (!gone.isEmpty()) syncPool();
        } catch (RuntimeException e) {
            LOG.warn("store housekeeping failed: {}", e.getMessage());
        }
    }

    @Override
    public void stop() {
        if (ticker != null) ticker.shutdownNow();
        ticker = null;
    }

    @Override
    public boolean isRunning() {
        return ticker != null;
    }
}
