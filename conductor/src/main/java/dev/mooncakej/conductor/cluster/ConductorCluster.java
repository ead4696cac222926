package dev.mooncakej.conductor.cluster;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.EtcdCluster;
import dev.mooncakej.cluster.Member;
import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.conductor.membership.WorkerMembership;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * The conductor in a cluster (profile {@code cluster}: {@code mooncakej.cluster.etcd-endpoints} set):
 * watches the workers registered in etcd and rebuilds the scheduler when they change, and campaigns
 * for leadership; until elected it is a standby that answers 503. On election it rebuilds the
 * scheduler state from the workers (prefix index pulled from every prefill worker; they then push
 * their changes to it), so a failover takes at most the lease TTL plus that rebuild. Without etcd it
 * does nothing: the static worker lists of {@code mooncakej.conductor.*-workers} apply.
 */
@Component
public class ConductorCluster implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(ConductorCluster.class);
    static final String ELECTION = "conductor";

    private final ClusterSettings settings;
    private final WorkerMembership membership;
    private final Leadership leadership;
    private final Environment env;
    private final AtomicReference<Map<String, Member>> members = new AtomicReference<>(Map.of());
    private volatile EtcdCluster etcd;
    private volatile boolean running;
    private volatile double lastRebuildSeconds;
    private volatile boolean elected;

    public ConductorCluster(
            Environment env,
            WorkerMembership membership,
            Leadership leadership,
            MeterRegistry meters,
            ClusterSettings settings) {
        this.env = env;
        this.settings = settings;
        this.membership = membership;
        this.leadership = leadership;
        Gauge.builder("mooncakej.conductor.leader", leadership, l -> l.leader() ? 1 : 0)
                .description("1 on the leader conductor, 0 on a standby")
                .register(meters);
        Gauge.builder("mooncakej.conductor.rebuild.seconds", this, c -> c.lastRebuildSeconds)
                .description("time the last scheduler rebuild took")
                .register(meters);
    }

    public ClusterSettings settings() {
        return settings;
    }

    public EtcdCluster etcd() {
        return etcd;
    }

    @Override
    public void start() {
        running = true;
        if (!settings.enabled()) return;
        String self = settings.advertiseUrl(env.getProperty(
                "local.server.port", Integer.class, env.getProperty("server.port", Integer.class, 8000)));
        leadership.set(false, "waiting to be elected leader through etcd", 0);
        etcd = settings.connect();
        try {
            etcd.watchMembers(m -> {
                members.set(m);
                if (elected)
                    Thread.ofVirtual()
                            .start(this::rebuild); // (rebuild is serialized; the last one sees the latest members)
            });
        } catch (Exception e) {
            throw new IllegalStateException(
                    "cannot read the workers from etcd at " + settings.etcdEndpoints() + " (" + e.getMessage()
                            + "): check mooncakej.cluster.etcd-endpoints",
                    e);
        }
        etcd.campaign(
                ELECTION,
                self,
                () -> {
                    long t0 = System.nanoTime();
                    elected = true; // from here on, membership changes rebuild too
                    rebuild();
                    leadership.set(true, null, etcd.leaderEpoch());
                    LOG.info(
                            "leader conductor at {}: serving after a {} ms rebuild",
                            self,
                            Math.round((System.nanoTime() - t0) / 1e6));
                },
                () -> {
                    elected = false;
                    leadership.set(
                            false,
                            "leadership lost (another conductor leads, or this one cannot renew its lease in etcd);"
                                    + " campaigning again",
                            0);
                });
        LOG.info(
                "conductor {} in cluster mode (etcd {}, lease TTL {} s): campaigning for leadership",
                self,
                settings.etcdEndpoints(),
                settings.leaseTtlSeconds());
    }

    private synchronized void rebuild() {
        Map<String, Member> m = members.get();
        List<String> prefill = m.values().stream()
                .filter(x -> x.role().equals("prefill"))
                .map(Member::url)
                .sorted()
                .toList();
        List<String> decode = m.values().stream()
                .filter(x -> x.role().equals("decode"))
                .map(Member::url)
                .sorted()
                .toList();
        lastRebuildSeconds = membership.setMembers(prefill, decode, true);
    }

    /** The current leader's URL (this one or another), if known. */
    public String leaderUrl() {
        return etcd == null ? null : etcd.leader(ELECTION).orElse(null);
    }

    @Override
    public void stop() {
        running = false;
        if (etcd != null) etcd.close();
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}
