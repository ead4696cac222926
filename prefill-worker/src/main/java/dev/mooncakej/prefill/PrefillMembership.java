package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.Member;
import dev.mooncakej.cluster.WorkerPresence;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvEvents;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * In a cluster ({@code mooncakej.cluster.etcd-endpoints} set): registers this prefill worker in etcd
 * once it serves, pushes its prefix-cache changes (blocks stored and evicted) to the leader conductor
 * every {@value #PUSH_MILLIS} ms, and on stop deregisters first, then lets running prefills finish.
 * Without etcd it does nothing (the conductor has a static list).
 */
@Component
public class PrefillMembership implements SmartLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillMembership.class);
    static final long PUSH_MILLIS = 200;

    private final ClusterSettings settings;
    private final PrefillService service;
    private final Environment env;
    private volatile WorkerPresence presence;
    private volatile Thread pusher;
    private volatile boolean running;

    public PrefillMembership(Environment env, PrefillService service, ClusterSettings settings) {
        this.env = env;
        this.service = service;
        this.settings = settings;
    }

    @Override
    public void start() {
        running = true;
        if (!settings.enabled()) return;
        int port = env.getProperty("local.server.port", Integer.class, 8100);
        var status = service.status();
        service.recordKvEvents();
        presence = WorkerPresence.start(
                settings,
                new Member(
                        "prefill",
                        service.name(),
                        settings.advertiseUrl(port),
                        status.model(),
                        status.capacityBlocks()));
        pusher = Thread.ofPlatform().daemon().name("kv-events-push").start(this::pushLoop);
    }

    private void pushLoop() {
        String self = presence.self().url();
        String leaderSeen = null;
        while (running) {
            try {
                Thread.sleep(PUSH_MILLIS);
                long[][] ev = service.drainKvEvents();
                String leader = presence.leaderUrl();
                if (leader != null && !leader.equals(leaderSeen))
                    leaderSeen = leader; // a new leader pulled the full index itself
                if (ev[0].length == 0 && ev[1].length == 0) continue;
                if (!presence.postToLeader(
                        "/internal/kv-events", InternalJson.encode(new KvEvents(self, ev[0], ev[1])))) {
                    LOG.debug(
                            "no leader took {} stored / {} evicted block events; the next leader pulls the whole index",
                            ev[0].length,
                            ev[1].length);
                }
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                LOG.warn("pushing prefix-cache events failed: {}", e.getMessage());
            }
        }
    }

    @Override
    public void stop() {
        running = false;
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
