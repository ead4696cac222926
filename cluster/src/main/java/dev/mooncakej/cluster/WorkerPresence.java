package dev.mooncakej.cluster;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
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
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private volatile String leader;
    private volatile long leaderCheckedAt;

    private final dev.mooncakej.kvcache.wire.ClusterCredential credential;

    private WorkerPresence(EtcdCluster etcd, Member self, dev.mooncakej.kvcache.wire.ClusterCredential credential) {
        this.etcd = etcd;
        this.self = self;
        this.credential = credential;
    }

    /** Connects to etcd and registers; a worker that cannot reach etcd now keeps trying in the background. */
    /** @param credential what its calls to the leader's internal routes carry */
    public static WorkerPresence start(
            ClusterSettings settings, Member self, dev.mooncakej.kvcache.wire.ClusterCredential credential) {
        EtcdCluster etcd = settings.connect();
        etcd.register(self);
        return new WorkerPresence(etcd, self, credential);
    }

    public Member self() {
        return self;
    }

    /**
     * POSTs a JSON body to {@code path} on the leader conductor; false when there is no leader or it
     * did not take it (the caller keeps or drops the update; a new leader pulls the full state anyway).
     */
    public boolean postToLeader(String path, String json) {
        String url = leaderUrl();
        if (url == null) return false;
        try {
            HttpResponse<Void> r = http.send(
                    HttpRequest.newBuilder(URI.create(url + path))
                            .timeout(Duration.ofSeconds(2))
                            .header("Content-Type", "application/json")
                            .header(dev.mooncakej.kvcache.wire.ClusterCredential.HEADER, credential.value())
                            .POST(HttpRequest.BodyPublishers.ofString(json))
                            .build(),
                    HttpResponse.BodyHandlers.discarding());
            if (r.statusCode() / 100 == 2) return true;
            leader = null; // 409: not the leader (any more)
            return false;
        } catch (Exception e) {
            leader = null;
            return false;
        }
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
