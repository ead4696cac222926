package dev.mooncakej.cluster;

import java.util.logging.Logger;

/**
 * A worker's presence in the cluster: its registration (lease kept alive, re-registered after etcd
 * comes back) and a channel to the current leader conductor for pushed updates. Plain Java; each
 * worker app ties it to its lifecycle.
 */
public final class WorkerPresence implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WorkerPresence.class.getName());

    private final EtcdCluster etcd;
    private final Member self;
    private volatile String leader;
    private volatile long leaderCheckedAt;

    private WorkerPresence(EtcdCluster etcd, Member self, InternalHttp internal) {
        this.etcd = etcd;
        this.self = self;
        this.link = new LeaderLink(this::leaderUrl, internal);
    }

    private final LeaderLink link;

    /**
     * Connects to etcd and registers; a worker that cannot reach etcd now keeps trying in the
     * background. {@code internal}: what its calls to the leader's internal routes carry.
     */
    public static WorkerPresence start(ClusterSettings settings, Member self, InternalHttp internal) {
        EtcdCluster etcd = settings.connect();
        etcd.register(self);
        return new WorkerPresence(etcd, self, internal);
    }

    public Member self() {
        return self;
    }

    /**
     * POSTs a JSON body to {@code path} on the leader conductor; false when there is no leader or it
     * did not take it (the caller keeps or drops the update; a new leader pulls the full state anyway).
     */
    public boolean postToLeader(String path, String json) {
        if (leaderUrl() == null) return false;
        if (link.post(path, json) != null) return true;
        leader = null; // a 409 (not the leader any more), or unreachable: look it up again
        return false;
    }

    /** The leader conductor's URL, looked up in etcd (cached for a second). */
    public String leaderUrl() {
        long now = System.nanoTime();
        if (leader == null || now - leaderCheckedAt > 1_000_000_000L) {
            leader = etcd.leader("conductor").filter(Member::plainUrl).orElse(null);
            leaderCheckedAt = now;
        }
        return leader;
    }

    /** Leaves the cluster (the conductor stops scheduling here once it sees the key go). */
    public void deregister() {
        etcd.deregister();
        LOG.info("deregistered " + self.role() + " worker '" + self.name() + "'");
    }

    @Override
    public void close() {
        etcd.close();
    }
}
