package dev.mooncakej.prefill;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.web.Drainable;
import dev.mooncakej.worker.WorkerLink;
import dev.mooncakej.worker.WorkerRuntime;
import java.time.Duration;
import org.springframework.context.SmartLifecycle;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Component;

/**
 * This prefill worker in its cluster ({@link WorkerLink}): in etcd mode ({@code
 * mooncakej.cluster.etcd-endpoints} set) it registers once it serves and on stop deregisters first,
 * then lets running prefills finish; in both modes it reports its prefix cache to the store master on
 * the leader conductor ({@link StoreReporter}; on one host the conductor is {@code
 * mooncakej.prefill.conductor-url}) and contributes its pool DRAM. Its stop (SIGTERM, {@code POST
 * /internal/drain}) is the drain: it leaves scheduling, then its queue is finished or handed back
 * within {@code mooncakej.prefill.drain-budget-seconds}.
 */
@Component
public class PrefillMembership implements SmartLifecycle, Drainable {
    private final PrefillService service;
    private final Duration budget;
    private final WorkerRuntime runtime;
    private final ClusterSettings cluster;
    private final InternalHttp internal;
    private final Environment env;
    private volatile WorkerLink link;

    public PrefillMembership(
            Environment env,
            PrefillProperties props,
            PrefillService service,
            WorkerRuntime runtime,
            ClusterSettings cluster,
            InternalHttp internal) {
        this.env = env;
        this.budget = Duration.ofSeconds(props.drainBudgetSeconds());
        this.service = service;
        this.runtime = runtime;
        this.cluster = cluster;
        this.internal = internal;
    }

    @Override
    public void start() {
        int port = env.getProperty("local.server.port", Integer.class, 8100);
        WorkerLink l = WorkerLink.join(service.name(), service.status(), port, runtime.settings(), cluster, internal);
        link = l;
        if (!l.connected()) return;
        service.useStore(l.leader());
        StoreReporter reporter = new StoreReporter(service, l.self(), l.leader());
        l.start("store-report", reporter, reporter::stop);
        l.joinPool(runtime.transfer(), runtime.segment().poolMemory());
    }

    @Override
    public void stop() {
        WorkerLink l = link;
        if (l == null) return;
        l.stop(service::drain, budget, "prefills");
        link = null;
    }

    @Override
    public Duration drainBudget() {
        return budget;
    }

    @Override
    public boolean isRunning() {
        return link != null;
    }
}
