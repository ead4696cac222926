package dev.mooncakej.decode;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.LoadReport;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.web.Drainable;
import dev.mooncakej.worker.WorkerLink;
import dev.mooncakej.worker.WorkerRuntime;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * This decode worker in its cluster ({@link WorkerLink}): in etcd mode it registers once it serves;
 * with etcd or a {@code mooncakej.decode.conductor-url} it pushes its load (running requests, KV held,
 * decode steps) to the leader conductor every second, so a newly elected leader counts what its
 * predecessor placed, and puts finished sequences into the KV pool through its store master. Its stop
 * (SIGTERM, {@code POST /internal/drain}) is the drain: it deregisters, refuses new reservations, and
 * within {@code mooncakej.decode.drain-budget-seconds} lets short streams finish and hands the others
 * back to the conductor to continue elsewhere ({@link DecodeService#drain}), before the web server
 * goes down.
 */
@Component
public class DecodeMembership implements SmartLifecycle, Drainable {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeMembership.class);

    private final DecodeService service;
    private final DecodeAgent agent;
    private final WorkerRuntime runtime;
    private final ClusterSettings cluster;
    private final InternalHttp internal;
    private final Environment env;
    private volatile WorkerLink link;

    public DecodeMembership(
            Environment env,
            DecodeService service,
            DecodeAgent agent,
            WorkerRuntime runtime,
            ClusterSettings cluster,
            InternalHttp internal) {
        this.env = env;
        this.service = service;
        this.agent = agent;
        this.runtime = runtime;
        this.cluster = cluster;
        this.internal = internal;
    }

    @Override
    public void start() {
        int port = env.getProperty("local.server.port", Integer.class, 8200);
        WorkerLink l = WorkerLink.join(service.name(), service.status(0), port, runtime.settings(), cluster, internal);
        link = l;
        if (!l.connected()) return;
        PoolSegment pool = l.joinPool(runtime.transfer(), runtime.segment().poolMemory());
        if (pool == null)
            LOG.info(
                    "no KV pool DRAM on this worker (mooncakej.store.dram-bytes=0); finished sequences are not pooled");
        else service.useStore(l.storeClient(), pool, l.self());
        l.every(Duration.ofSeconds(1), "load-push", "/internal/load", () -> loadReport(l.self()));
    }

    /**
     * This worker's load for the conductor: running requests, KV in use and its capacity, and the
     * decode steps since the last report (the conductor's TBT fit learns from them).
     */
    private String loadReport(String self) {
        var st = service.status(agent.activeCount());
        return InternalJson.encode(new LoadReport(
                self,
                st.active(),
                (long) st.usedBlocks() * st.blockTokens(),
                (long) st.capacityBlocks() * st.blockTokens(),
                agent.drainSteps()));
    }

    @Override
    public void stop() {
        WorkerLink l = link;
        if (l == null) return;
        l.stop(service::drain, drainBudget(), "requests decoding");
        link = null;
    }

    @Override
    public Duration drainBudget() {
        return Duration.ofSeconds(service.props().drainBudgetSeconds());
    }

    @Override
    public boolean isRunning() {
        return link != null;
    }
}
