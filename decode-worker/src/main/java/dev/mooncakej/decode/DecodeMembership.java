package dev.mooncakej.decode;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.cluster.LeaderLink;
import dev.mooncakej.cluster.Member;
import dev.mooncakej.cluster.WorkerPresence;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.LoadReport;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.time.Duration;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * In a cluster ({@code mooncakej.cluster.etcd-endpoints} set): registers this decode worker in etcd
 * once it serves and pushes its load (running requests, KV held) to the leader conductor every second,
 * so a newly elected leader counts what its predecessor placed; on stop it deregisters, refuses new reservations and
 * lets every running request
 * finish (up to 30 s) before the web server goes down. Without etcd it does nothing.
 */
@Component
public class DecodeMembership implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeMembership.class);

    private final ClusterSettings settings;
    private final DecodeService service;
    private final Environment env;
    private volatile WorkerPresence presence;
    private volatile boolean running;

    private final DecodeAgent agent;

    private final DecodeProperties props;
    private final InternalHttp internal;
    private final WorkerSegment segment;
    private volatile PoolSegment pool;
    private volatile Thread poolThread;

    public DecodeMembership(
            Environment env,
            DecodeService service,
            DecodeAgent agent,
            ClusterSettings settings,
            DecodeProperties props,
            WorkerSegment segment,
            InternalHttp internal) {
        this.internal = internal;
        this.props = props;
        this.segment = segment;
        this.env = env;
        this.agent = agent;
        this.service = service;
        this.settings = settings;
    }

    @Override
    public void start() {
        running = true;
        int port = env.getProperty("local.server.port", Integer.class, 8200);
        if (!settings.enabled()) {
            if (props.conductorUrl() != null) {
                String self = "http://" + props.kvHost() + ":" + port;
                LeaderLink link = new LeaderLink(props::conductorUrl, internal);
                joinPool(link, self);
                pushLoad(self, json -> link.post("/internal/load", json) != null);
            } else
                LOG.info("no conductor to report load to or put finished sequences through"
                        + " (mooncakej.decode.conductor-url is not set)");
            return;
        }
        var status = service.status(0);
        presence = WorkerPresence.start(
                settings,
                new Member(
                        "decode", service.name(), settings.advertiseUrl(port), status.model(), status.capacityBlocks()),
                internal);
        String self = presence.self().url();
        WorkerPresence p = presence;
        joinPool(new LeaderLink(p::leaderUrl, internal), self);
        pushLoad(self, json -> presence.postToLeader("/internal/load", json));
    }

    /**
     * Every second, this worker's load to the conductor: running requests, KV in use and its
     * capacity, and the decode steps since the last report (the conductor's TBT fit learns from them).
     */
    private void pushLoad(String self, Predicate<String> post) {
        pusher = Thread.ofPlatform().daemon().name("load-push").start(() -> {
            while (running) {
                try {
                    Thread.sleep(1000);
                    var st = service.status(agent.activeCount());
                    post.test(InternalJson.encode(new LoadReport(
                            self,
                            st.active(),
                            (long) st.usedBlocks() * st.blockTokens(),
                            (long) st.capacityBlocks() * st.blockTokens(),
                            agent.drainSteps())));
                } catch (InterruptedException e) {
                    return;
                } catch (RuntimeException e) {
                    LOG.debug("load report failed: {}", e.getMessage());
                }
            }
        });
    }

    private volatile Thread pusher;

    /** Contributes this worker's pool DRAM (if any) to the store master, and puts finished sequences there. */
    private void joinPool(LeaderLink link, String self) {
        StoreClient store = new StoreClient(link::post);
        if (segment.poolMemory() == null) {
            LOG.info(
                    "no KV pool DRAM on this worker (mooncakej.store.dram-bytes=0); finished sequences are not pooled");
            return;
        }
        pool = new PoolSegment(service.transfer(), segment.poolMemory(), store, self);
        service.useStore(store, pool, self);
        poolThread = Thread.ofPlatform().daemon().name("pool-heartbeat").start(pool);
    }

    @Override
    public void stop() {
        running = false;
        if (pool != null) pool.stop();
        if (poolThread != null) poolThread.interrupt();
        if (pusher != null) pusher.interrupt();
        if (presence != null) presence.deregister();
        try {
            if (!service.drain(Duration.ofSeconds(30))) LOG.warn("stopping with requests still decoding after 30 s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (presence != null) presence.close();
    }

    @Override
    public boolean isRunning() {
        return running;
    }
}
