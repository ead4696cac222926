package dev.mooncakej.worker;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.cluster.LeaderLink;
import dev.mooncakej.cluster.Member;
import dev.mooncakej.cluster.WorkerPresence;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A worker's place in its cluster. In etcd mode ({@code mooncakej.cluster.etcd-endpoints} set) it is
 * registered (its presence) and talks to whichever conductor leads; without etcd it talks to its one
 * conductor ({@code <prefix>conductor-url}), or to none. It contributes the worker's pool DRAM to the
 * store master and runs the worker's periodic reports; {@link #leave()} stops them and deregisters (no
 * new work is scheduled here from then on), {@link #close()} ends the presence after the app drained.
 */
public final class WorkerLink implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WorkerLink.class.getName());

    private final WorkerPresence presence;
    private final LeaderLink leader;
    private final String self;
    private final List<Thread> threads = new CopyOnWriteArrayList<>();
    private final List<Runnable> stops = new CopyOnWriteArrayList<>();
    private volatile boolean running = true;

    private WorkerLink(WorkerPresence presence, LeaderLink leader, String self) {
        this.presence = presence;
        this.leader = leader;
        this.self = self;
    }

    /**
     * Joins: registers in etcd when the cluster has it, else links to {@code <prefix>conductor-url}
     * when set, else stays alone ({@link #connected()} false): the worker whose segment is {@code name}
     * and whose status (role, model, KV capacity) is {@code status}, serving on {@code port}.
     */
    public static WorkerLink join(
            String name,
            WorkerStatus status,
            int port,
            WorkerSettings settings,
            ClusterSettings cluster,
            InternalHttp internal) {
        if (cluster.enabled()) {
            WorkerPresence presence = WorkerPresence.start(
                    cluster,
                    new Member(
                            status.role(), name, cluster.advertiseUrl(port), status.model(), status.capacityBlocks()),
                    internal);
            return new WorkerLink(
                    presence,
                    new LeaderLink(presence::leaderUrl, internal),
                    presence.self().url());
        }
        String self = "http://" + settings.kvHost() + ":" + port;
        if (settings.conductorUrl() == null) {
            LOG.info("no conductor to report to (" + settings.prefix() + "conductor-url is not set)");
            return new WorkerLink(null, null, self);
        }
        return new WorkerLink(null, new LeaderLink(settings::conductorUrl, internal), self);
    }

    /** Whether there is a conductor to report to (etcd's leader, or the configured one). */
    public boolean connected() {
        return leader != null;
    }

    /** Whether this worker is registered in etcd (it drains on stop; the conductor sees it leave). */
    public boolean clustered() {
        return presence != null;
    }

    /** This worker's URL as the conductor knows it. */
    public String self() {
        return self;
    }

    /** The link to the leading conductor (null when not {@link #connected()}). */
    public LeaderLink leader() {
        return leader;
    }

    /** The store master on the leading conductor (null when not {@link #connected()}). */
    public StoreClient storeClient() {
        return leader == null ? null : new StoreClient(leader::post);
    }

    /**
     * POSTs to the leading conductor; false when there is none or it did not take it (in etcd mode the
     * leader is looked up again then).
     */
    public boolean postToLeader(String path, String json) {
        if (presence != null) return presence.postToLeader(path, json);
        return leader != null && leader.post(path, json) != null;
    }

    /**
     * Contributes {@code memory} (this worker's pool DRAM, in its transfer segment) to the store master
     * and keeps it alive with heartbeats until {@link #leave()}; null when not connected or there is none.
     */
    public PoolSegment joinPool(TransferEngine transfer, MemorySegment memory) {
        if (leader == null || memory == null) return null;
        PoolSegment pool = new PoolSegment(transfer, memory, storeClient(), self);
        start("pool-heartbeat", pool, pool::stop);
        return pool;
    }

    /** Runs {@code task} on a daemon thread until {@link #leave()}, which calls {@code stop} and interrupts it. */
    public void start(String name, Runnable task, Runnable stop) {
        stops.add(stop);
        threads.add(Thread.ofPlatform().daemon().name(name).start(task));
    }

    /**
     * Every {@code period} until {@link #leave()}, POSTs what {@code report} gives (null: nothing this
     * time) to {@code path} on the leading conductor; a failed report is logged and the next one goes on.
     */
    public void every(Duration period, String name, String path, Supplier<String> report) {
        start(
                name,
                () -> {
                    while (running) {
                        try {
                            Thread.sleep(period);
                            String json = report.get();
                            if (json != null) postToLeader(path, json);
                        } catch (InterruptedException e) {
                            return;
                        } catch (RuntimeException e) {
                            LOG.log(Level.FINE, name + " failed: " + e.getMessage());
                        }
                    }
                },
                () -> {});
    }

    /** Stops the reports and the pool's heartbeats and deregisters: no new work is scheduled here from now on. */
    public void leave() {
        running = false;
        for (Runnable s : stops) s.run();
        for (Thread t : threads) t.interrupt();
        if (presence != null) presence.deregister();
    }

    /** Ends the presence (its etcd client); after {@link #leave()} and the app's drain. */
    @Override
    public void close() {
        if (presence != null) presence.close();
    }

    /** How a worker lets what it runs finish: true when all did within the budget. */
    @FunctionalInterface
    public interface Drain {
        boolean drain(Duration budget) throws InterruptedException;
    }

    /**
     * The worker's stop: {@link #leave()}, then (with {@code drain}, null: none) up to {@code budget}
     * for its running {@code work} to finish, then {@link #close()}.
     */
    public void stop(Drain drain, Duration budget, String work) {
        leave();
        try {
            if (drain != null && !drain.drain(budget))
                LOG.warning("stopping with " + work + " still running after " + budget.toSeconds() + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        close();
    }
}
