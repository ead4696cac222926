package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.cluster.LeaderLink;
import dev.mooncakej.cluster.Member;
import dev.mooncakej.cluster.WorkerPresence;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.kvstore.client.StoreClient;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * This prefill worker in its cluster: in etcd mode ({@code mooncakej.cluster.etcd-endpoints} set) it
 * registers once it serves and on stop deregisters first, then lets running prefills finish; in both
 * modes it reports its prefix cache to the store master on the leader conductor ({@link StoreReporter};
 * on one host the conductor is {@code mooncakej.prefill.conductor-url}).
 */
@Component
public class PrefillMembership implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillMembership.class);

    private final ClusterSettings settings;
    private final PrefillService service;
    private final Environment env;
    private volatile WorkerPresence presence;
    private volatile Thread pusher;
    private volatile boolean running;

    private final PrefillProperties props;
    private volatile StoreReporter reporter;
    private volatile PoolSegment pool;
    private volatile Thread poolThread;

    private final InternalHttp internal;

    public PrefillMembership(
            Environment env,
            PrefillService service,
            ClusterSettings settings,
            PrefillProperties props,
            InternalHttp internal) {
        this.internal = internal;
        this.props = props;
        this.env = env;
        this.service = service;
        this.settings = settings;
    }

    @Override
    public void start() {
        running = true;
        int port = env.getProperty("local.server.port", Integer.class, 8100);
        var status = service.status();
        LeaderLink link;
        String self;
        if (settings.enabled()) {
            presence = WorkerPresence.start(
                    settings,
                    new Member(
                            "prefill",
                            service.name(),
                            settings.advertiseUrl(port),
                            status.model(),
                            status.capacityBlocks()),
                    internal);
            self = presence.self().url();
            WorkerPresence p = presence;
            link = new LeaderLink(p::leaderUrl, internal);
        } else if (props.conductorUrl() != null) {
            self = "http://" + props.kvHost() + ":" + port;
            link = new LeaderLink(props::conductorUrl, internal);
        } else {
            LOG.info("no conductor to report the prefix cache to (mooncakej.prefill.conductor-url is not set)");
            return;
        }
        service.useStore(link);
        reporter = new StoreReporter(service, self, link);
        pusher = Thread.ofPlatform().daemon().name("store-report").start(reporter);
        if (service.segment().poolMemory() != null) { // DRAM the master may allocate in (mooncakej.store.dram-bytes)
            pool = new PoolSegment(
                    service.transfer(), service.segment().poolMemory(), new StoreClient(link::post), self);
            poolThread = Thread.ofPlatform().daemon().name("pool-heartbeat").start(pool);
        }
    }

    @Override
    public void stop() {
        running = false;
        if (reporter != null) reporter.stop();
        if (pool != null) pool.stop();
        if (poolThread != null) poolThread.interrupt();
        if (pusher != null) pusher.interrupt();
        if (presence == null) return;
        presence.deregister(); // no new work is scheduled here from now on
        try {
            if (!service.drain(Duration.ofSeconds(30))) LOG.warn("stopping with prefills still running after 30 s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (pusher != null) pusher.interrupt();
        presence.close();
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}
