package dev.mooncakej.conductor.membership;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.conductor.workers.WorkerGuard;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * Which workers the scheduler uses: the cluster's members (the static lists of
 * {@code mooncakej.conductor.*-workers}, or etcd membership through {@code ConductorCluster}) less
 * those whose circuit breaker is open. A change adds and removes instances in the running scheduler;
 * a prefill worker that joins has its view seeded from the block keys it reports holding.
 */
@Component
public class WorkerMembership implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(WorkerMembership.class);

    private final LiveScheduler scheduler;
    private final WorkerClient workers;
    private final ConductorProperties props;
    private final ClusterSettings cluster;
    private final Map<String, WorkerEndpoint> endpoints = new ConcurrentHashMap<>();
    private final Set<String> openBreakers = ConcurrentHashMap.newKeySet();
    /** Workers whose control channel answered nothing for the stall timeout: out until a channel opens again. */
    private final Set<String> stalled = ConcurrentHashMap.newKeySet();
    /** Workers the store master found silent (no heartbeat for its liveness TTL): out until they report again. */
    private final Set<String> silent = ConcurrentHashMap.newKeySet();

    private volatile List<String> memberPrefill = List.of();
    private volatile List<String> memberDecode = List.of();
    private volatile boolean running;

    public WorkerMembership(
            LiveScheduler scheduler,
            WorkerClient workers,
            WorkerGuard guard,
            ConductorProperties props,
            ClusterSettings cluster) {
        this.scheduler = scheduler;
        this.workers = workers;
        this.props = props;
        this.cluster = cluster;
        guard.onTransition(this::breakerChanged);
        workers.onStall(this::stall);
    }

    /** Single-host mode: the static worker lists (a cluster's conductor hears etcd instead). */
    @Override
    public void start() {
        running = true;
        if (!cluster.enabled()) setMembers(props.prefillWorkers(), props.decodeWorkers(), false);
    }

    /**
     * The cluster's workers; returns the seconds the change took. {@code seedNow}: pull the joined
     * prefill workers' block keys before returning (a newly elected leader), else in the background.
     */
    public double setMembers(List<String> prefillUrls, List<String> decodeUrls, boolean seedNow) {
        memberPrefill = List.copyOf(prefillUrls);
        memberDecode = List.copyOf(decodeUrls);
        return refresh(seedNow);
    }

    private synchronized double refresh(boolean seedNow) {
        long t0 = System.nanoTime();
        List<WorkerEndpoint> prefill = memberPrefill.stream()
                .filter(u -> !openBreakers.contains(u) && !silent.contains(u) && !stalled.contains(u))
                .map(u -> endpoint(u, "prefill"))
                .toList();
        List<WorkerEndpoint> decode = memberDecode.stream()
                .filter(u -> !openBreakers.contains(u) && !silent.contains(u) && !stalled.contains(u))
                .map(u -> endpoint(u, "decode"))
                .toList();
        List<WorkerEndpoint> joined = scheduler.setWorkers(prefill, decode);
        Runnable seed = () -> seed(joined);
        if (seedNow) seed.run();
        else if (!joined.isEmpty()) Thread.ofVirtual().name("kv-index-seed").start(seed);
        double s = (System.nanoTime() - t0) / 1e9;
        LOG.info("workers now: prefill {}, decode {} ({} prefill joined)", urls(prefill), urls(decode), joined.size());
        return s;
    }

    private void seed(List<WorkerEndpoint> joined) {
        for (WorkerEndpoint w : joined) {
            try {
                long[] keys = workers.kvIndex(w.url()).block(Duration.ofSeconds(5));
                int n = keys == null ? 0 : scheduler.seed(w.url(), keys);
                if (n > 0) LOG.info("prefix index seeded with {} blocks of {}", n, w.url());
            } catch (RuntimeException e) {
                LOG.warn(
                        "could not read the prefix index of {} ({}); it fills again as requests run",
                        w.url(),
                        e.getMessage());
            }
        }
    }

    private final Map<String, java.util.concurrent.atomic.AtomicInteger> nextId = new ConcurrentHashMap<>();

    /**
     * The same endpoint object per URL across membership changes (its in-flight count carries over),
     * with a stable id given at first sight, {@code prefill-N} or {@code decode-N} in order of arrival
     * (the configured lists' order in single-host mode): what clients see instead of an address.
     */
    private WorkerEndpoint endpoint(String url, String role) {
        return endpoints.computeIfAbsent(
                url,
                u -> new WorkerEndpoint(
                        u,
                        role + "-"
                                + nextId.computeIfAbsent(role, r -> new java.util.concurrent.atomic.AtomicInteger())
                                        .getAndIncrement()));
    }

    private static List<String> urls(List<WorkerEndpoint> ws) {
        return ws.stream().map(WorkerEndpoint::url).toList();
    }

    /** An open breaker takes its worker out of scheduling; half-open (trial calls) or closed brings it back. */
    private void breakerChanged(String url, CircuitBreaker.State state) {
        boolean out = state == CircuitBreaker.State.OPEN || state == CircuitBreaker.State.FORCED_OPEN;
        boolean changed = out ? openBreakers.add(url) : openBreakers.remove(url);
        if (changed) Thread.ofVirtual().start(() -> refresh(false));
    }

    /** A worker's control channel stalled (out of scheduling) or answers again (back in). */
    private void stall(String url, boolean isStalled) {
        boolean changed = isStalled ? stalled.add(url) : stalled.remove(url);
        if (changed) Thread.ofVirtual().start(() -> refresh(false));
    }

    /** Workers out of scheduling because they answered nothing for the stall timeout. */
    public Set<String> stalledWorkers() {
        return Set.copyOf(stalled);
    }

    /** The store master's liveness: a worker silent for its TTL leaves scheduling; its next report brings it back. */
    public void liveness(String url, boolean alive) {
        boolean changed = alive ? silent.remove(url) : silent.add(url);
        if (changed) Thread.ofVirtual().start(() -> refresh(false));
    }

    /** Workers out of scheduling because their breaker is open. */
    public Set<String> openBreakers() {
        return Set.copyOf(openBreakers);
    }

    /** The URLs of the workers the scheduler uses now. */
    public List<String> workerUrls(boolean prefill) {
        return urls(prefill ? scheduler.prefillWorkers() : scheduler.decodeWorkers());
    }

    @Override
    public void stop() {
        running = false;
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}
