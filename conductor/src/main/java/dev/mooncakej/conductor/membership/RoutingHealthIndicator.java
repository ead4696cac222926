package dev.mooncakej.conductor.membership;

import dev.mooncakej.scheduler.RoutingHealth;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.health.contributor.Status;
import org.springframework.stereotype.Component;

/**
 * "routing" in the health: UNKNOWN while a listed worker has not been admitted yet (not reachable),
 * DEGRADED while a worker was refused at admission (it breaks the block-key contract) or cache hits
 * stopped silently on one ({@link RoutingHealth}: predicted prefix hits it no longer reports), UP
 * otherwise. Not part of readiness: a degraded conductor still serves, with fewer hits. The same
 * facts are logged when they change and exported as {@code mooncakej_routing_degraded} (workers) and
 * {@code mooncakej_routing_hit_gap} (per prefill worker, 1 - reported / predicted prefix tokens).
 */
@Component("routing")
public class RoutingHealthIndicator implements HealthIndicator {
    private static final Logger LOG = LoggerFactory.getLogger(RoutingHealthIndicator.class);
    public static final Status DEGRADED = new Status("DEGRADED", "cache-aware routing is losing hits");

    private final WorkerMembership membership;
    private final RoutingHealth hits;
    private final Set<String> logged = ConcurrentHashMap.newKeySet();
    private final MeterRegistry meters;
    private final Set<String> gauged = ConcurrentHashMap.newKeySet();

    public RoutingHealthIndicator(WorkerMembership membership, RoutingHealth hits, MeterRegistry meters) {
        this.membership = membership;
        this.hits = hits;
        this.meters = meters;
        Gauge.builder(
                        "mooncakej.routing.degraded",
                        this,
                        r -> r.degradedWorkers().size())
                .description("workers refused at admission or whose predicted prefix hits stopped")
                .register(meters);
    }

    private static double now() {
        return System.nanoTime() / 1e9;
    }

    /** Refused and hit-less workers, with why. */
    public Map<String, String> degradedWorkers() {
        Map<String, String> out = new TreeMap<>();
        membership.refusedWorkers().forEach((w, why) -> out.put(w, "refused at admission: " + why));
        out.putAll(hits.degraded(now()));
        return out;
    }

    /** A prefill on {@code worker} ended: the prefix tokens routed for, and those it reported reusing. */
    public void observe(String worker, long predictedTokens, long reportedTokens) {
        hits.observe(worker, predictedTokens, reportedTokens, now());
        if (gauged.add(worker))
            Gauge.builder("mooncakej.routing.hit.gap", hits, h -> {
                        var w = h.windows(now()).get(worker);
                        return w == null ? 0 : w.gap();
                    })
                    .tag("worker", worker)
                    .description("1 - prefix tokens reported reused / predicted, over the routing-health window")
                    .register(meters);
        String why = hits.degraded(now()).get(worker);
        if (why != null && logged.add(worker))
            LOG.warn(
                    "routing degraded on {}: {} (cache hits stopped: a wiped cache, a key mismatch, a dead report"
                            + " stream)",
                    worker,
                    why);
        else if (why == null && logged.remove(worker)) LOG.info("routing on {} gets its predicted hits again", worker);
    }

    @Override
    public Health health() {
        Set<String> pending = membership.pendingWorkers();
        Map<String, String> degraded = degradedWorkers();
        Health.Builder b =
                !degraded.isEmpty() ? Health.status(DEGRADED) : !pending.isEmpty() ? Health.unknown() : Health.up();
        if (!pending.isEmpty()) b.withDetail("pending", pending);
        if (!degraded.isEmpty()) b.withDetail("degraded", degraded);
        return b.build();
    }
}
