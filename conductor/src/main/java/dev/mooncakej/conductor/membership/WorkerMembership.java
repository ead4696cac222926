package dev.mooncakej.conductor.membership;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.conductor.workers.WorkerGuard;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerProfile;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * Which workers the scheduler uses: the cluster's members (the static lists of
 * {@code mooncakej.conductor.*-workers}, or etcd membership through {@code ConductorCluster}) less
 * those whose circuit breaker is open. A member is admitted once its profile ({@code GET
 * /internal/profile}) keeps the block-key contract ({@link BlockKeyContract}; a worker that breaks it
 * is refused by name, logged, and shown in the routing health) and its start-up measurements have
 * seeded the estimators. A change adds and removes instances in the running scheduler; a prefill
 * worker that joins has its view seeded from the block keys it reports holding.
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
    /** Workers that said they drain, until when ({@link System#nanoTime()}): their deregistration follows. */
    private final Map<String, Long> draining = new ConcurrentHashMap<>();

    private static final long DRAINING_NANOS = TimeUnit.MINUTES.toNanos(1);

    /** Members whose profile kept the contract (or that have no profile route), with the profile (or null). */
    private final Map<String, Optional<WorkerProfile>> admitted = new ConcurrentHashMap<>();
    /** Members refused at admission, with why. */
    private final Map<String, String> refused = new ConcurrentHashMap<>();
    /** Members whose admission is under way (their profile is being asked for). */
    private final Set<String> admitting = ConcurrentHashMap.newKeySet();
    /** Admitted members whose warm-up requests are running: still pending for the routing health. */
    private final Set<String> warming = ConcurrentHashMap.newKeySet();

    private volatile Runnable warmUp = () -> {};

    /** What runs after a worker is admitted, before it counts as ready: the request path's warm-up. */
    public void onAdmitted(Runnable warmUp) {
        this.warmUp = warmUp;
    }

    private final ServedModel model;

    private final WorkerGuard guard;
    private volatile List<String> memberPrefill = List.of();
    private volatile List<String> memberDecode = List.of();
    private volatile boolean running, stopped;

    public WorkerMembership(
            LiveScheduler scheduler,
            WorkerClient workers,
            WorkerGuard guard,
            ConductorProperties props,
            ClusterSettings cluster,
            ServedModel model) {
        this.model = model;
        this.scheduler = scheduler;
        this.workers = workers;
        this.props = props;
        this.cluster = cluster;
        this.guard = guard;
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
        long t0 = System.nanoTime();
        memberPrefill = List.copyOf(prefillUrls);
        memberDecode = List.copyOf(decodeUrls);
        Set<String> members = new HashSet<>(prefillUrls);
        members.addAll(decodeUrls);
        admitted.keySet().retainAll(members); // one that leaves and comes back is checked again
        refused.keySet().retainAll(members);
        // ids are given in the members' order at first sight, not in the (racing) order of admission
        for (String u : prefillUrls) endpoint(u, "prefill");
        for (String u : decodeUrls) endpoint(u, "decode");
        if (seedNow) { // a newly elected leader: admit the members it can reach before it answers
            for (String u : prefillUrls)
                if (!admitted.containsKey(u) && !refused.containsKey(u)) admitOnce(u, "prefill");
            for (String u : decodeUrls) if (!admitted.containsKey(u) && !refused.containsKey(u)) admitOnce(u, "decode");
        }
        for (String u : prefillUrls) admitLater(u, "prefill");
        for (String u : decodeUrls) admitLater(u, "decode");
        refresh(seedNow);
        return (System.nanoTime() - t0) / 1e9;
    }

    /** Asks a member for its profile until it answers (or leaves); admits or refuses it. */
    private void admitLater(String url, String role) {
        if (admitted.containsKey(url) || refused.containsKey(url) || !admitting.add(url)) return;
        Thread.ofVirtual().name("admit-" + role).start(() -> {
            try {
                long wait = 100;
                while (!stopped) {
                    if (!(role.equals("prefill") ? memberPrefill : memberDecode).contains(url)) return;
                    if (admitOnce(url, role)) {
                        warming.add(url);
                        try {
                            refresh(false);
                            if (admitted.containsKey(url)) warmUp.run();
                        } finally {
                            warming.remove(url);
                        }
                        return;
                    }
                    Thread.sleep(wait);
                    wait = Math.min(2000, wait * 2);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                admitting.remove(url);
            }
        });
    }

    /** One attempt: true when the worker answered (admitted or refused), false when it could not be reached. */
    private boolean admitOnce(String url, String role) {
        WorkerProfile p;
        try {
            p = workers.profile(url).block(Duration.ofSeconds(6));
        } catch (RuntimeException e) {
            LOG.debug("no profile from {} yet ({})", url, e.getMessage());
            return false;
        }
        if (p == null) {
            LOG.warn("{} worker {} states no block-key contract (no /internal/profile); admitted unchecked", role, url);
            admitted.put(url, Optional.empty());
            return true;
        }
        String why = BlockKeyContract.mismatch(p, role, model.blockKeys(), model.keyIdentity());
        if (why != null) {
            refused.put(url, why);
            LOG.error("{} worker {} refused: {}", role, url, why);
            return true;
        }
        scheduler.calibrate(p);
        workers.warm(url);
        admitted.put(url, Optional.of(p));
        int before = model.contextLength();
        model.workersContext(admitted.values().stream()
                .flatMap(Optional::stream)
                .mapToInt(WorkerProfile::contextLength)
                .filter(c -> c > 0)
                .min()
                .orElse(0));
        if (model.contextLength() != before)
            LOG.info("context now {} tokens (the admitted workers' smallest)", model.contextLength());
        LOG.info(
                "{} worker {} admitted: block keys {} x {} tokens, {} prefill and {} decode-step measurements",
                role,
                url,
                p.hashVersion(),
                p.blockTokens(),
                p.prefill() == null ? 0 : p.prefill().size(),
                p.decode() == null ? 0 : p.decode().size());
        return true;
    }

    /** Members refused at admission, with why (shown in the routing health). */
    public Map<String, String> refusedWorkers() {
        return Map.copyOf(refused);
    }

    /** Members whose admission has not finished (not reachable yet). */
    public Set<String> pendingWorkers() {
        Set<String> out = new TreeSet<>(memberPrefill);
        out.addAll(memberDecode);
        out.removeAll(admitted.keySet());
        out.removeAll(refused.keySet());
        out.addAll(warming);
        return out;
    }

    private synchronized double refresh(boolean seedNow) {
        long t0 = System.nanoTime();
        List<WorkerEndpoint> prefill = memberPrefill.stream()
                .filter(u -> admitted.containsKey(u)
                        && !openBreakers.contains(u)
                        && !silent.contains(u)
                        && !stalled.contains(u)
                        && !drains(u))
                .map(u -> endpoint(u, "prefill"))
                .toList();
        List<WorkerEndpoint> decode = memberDecode.stream()
                .filter(u -> admitted.containsKey(u)
                        && !openBreakers.contains(u)
                        && !silent.contains(u)
                        && !stalled.contains(u)
                        && !drains(u))
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

    private final Map<String, AtomicInteger> nextId = new ConcurrentHashMap<>();

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
                                + nextId.computeIfAbsent(role, r -> new AtomicInteger())
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

    /**
     * A worker that missed a KV transfer's deadline, or was lost during one: its breaker opens, so it
     * is out of scheduling until the breaker lets a trial call through.
     */
    public void sideline(String url) {
        CircuitBreaker cb = guard.breaker(url);
        if (cb.getState() == CircuitBreaker.State.OPEN) return;
        cb.transitionToOpenState();
        refresh(false); // now, not on the listener's thread: the request placed again must not land there
    }

    /**
     * A worker said it drains (it handed back a prefill or a stream): out of scheduling at once, before
     * its deregistration reaches this conductor (for a minute at most: a worker that comes back under
     * the same address is admitted again).
     */
    public void draining(String url) {
        if (draining.put(url, System.nanoTime() + DRAINING_NANOS) == null) {
            LOG.info("{} drains: out of scheduling", url);
            refresh(false);
        }
    }

    private boolean drains(String url) {
        Long until = draining.get(url);
        if (until == null) return false;
        if (System.nanoTime() - until < 0) return true;
        draining.remove(url, until);
        return false;
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
        stopped = true;
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}
