package dev.mooncakej.kvtransfer.rdma;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.mooncakej.kvtransfer.verbs.VerbsLayouts;
import dev.mooncakej.kvtransfer.verbs.VerbsLib;
import dev.mooncakej.kvtransfer.verbs.VerbsOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Logger;

/**
 * The rdma transport's completion side: one poller reaps every device's completion queue (a
 * completion returns its credit, finishes its slice and lets a starved endpoint post again; a failed
 * one breaks its endpoint, whose flushed work is swept to other paths), checks retiring endpoints'
 * deadlines, and a second thread reads each device's async events (port down or up, QP fatal, CQ
 * error, device fatal) and acts on them.
 */
final class RdmaCompletions {
    private static final Logger LOG = Logger.getLogger(RdmaCompletions.class.getName());
    private static final long WC_ID = QueuePair.off(VerbsLayouts.IBV_WC, "wr_id");
    private static final long WC_STATUS = QueuePair.off(VerbsLayouts.IBV_WC, "status");

    private final RdmaTransport rdma;

    RdmaCompletions(RdmaTransport rdma) {
        this.rdma = rdma;
    }

    void pollLoop() {
        MemorySegment wc = Arena.global().allocate(VerbsLayouts.IBV_WC.byteSize() * 16, 8);
        long wcSize = VerbsLayouts.IBV_WC.byteSize();
        int idle = 0;
        long lastCheck = System.nanoTime();
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        while (!rdma.closed) {
            int got = 0;
            for (RdmaDevice d : rdma.devs) {
                if (d.cqBroken) continue;
                int n = VerbsOps.pollCq(d.d.cq(), 16, wc);
                if (n < 0) {
                    cqBroken(d, "ibv_poll_cq returned " + n);
                    continue;
                }
                for (int i = 0; i < n; i++) {
                    long id = wc.get(JAVA_LONG, i * wcSize + WC_ID);
                    int status = wc.get(JAVA_INT, i * wcSize + WC_STATUS);
                    RdmaTransport.Posted p = rdma.posted.remove(id);
                    if (p == null) continue; // failed explicitly before (its credit went back then)
                    d.credits.incrementAndGet();
                    failures.clear();
                    p.ep().completed(id, status, failures);
                    rdma.fire(failures);
                    if (status == VerbsLib.WC_SUCCESS) rdma.completion.done(p.slice());
                    else if (status == VerbsLib.WC_WR_FLUSH_ERR) // a consequence of the error that broke the QP
                    rdma.completion.swept(p.slice(), "rdma work request flushed: endpoint " + p.ep().key + " broke");
                    else
                        rdma.completion.failed(
                                p.slice(), "rdma work completion status " + status + " on " + p.ep().key, true);
                }
                got += n;
                RdmaEndpoint e;
                while (d.credits.get() > 0 && (e = d.starved.poll()) != null) e.resume();
            }
            long now = System.nanoTime();
            if (now - lastCheck > 20_000_000L && !rdma.retiring.isEmpty()) {
                lastCheck = now;
                failures.clear();
                for (RdmaEndpoint e : List.copyOf(rdma.retiring)) e.checkDeadline(now, failures);
                rdma.fire(failures);
            }
            if (got > 0) idle = 0;
            else if (++idle > 64)
                LockSupport.parkNanos(
                        rdma.posted.isEmpty() ? 1_000_000 : 20_000); // back off instead of spinning a core
        }
    }

    /** The device's CQ can no longer be reaped: every request in flight on it fails now, the device is left out. */
    private void cqBroken(RdmaDevice d, String why) {
        if (d.cqBroken) return;
        d.cqBroken = true;
        d.down = "completion queue error (" + why + ")";
        LOG.warning("rdma device " + d.d.name() + ": " + d.down + "; its transfers move to other paths");
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        for (RdmaEndpoint ep : List.copyOf(d.endpoints)) {
            synchronized (ep) {
                ep.breakLocked(d.down, failures, false);
                ep.failInflight(d.down, failures);
                ep.destroyLocked();
            }
        }
        rdma.fire(failures);
    }

    void eventLoop() {
        while (!rdma.closed) {
            for (RdmaDevice d : rdma.devs) {
                VerbsLib.AsyncEvent ev;
                try {
                    ev = rdma.verbs.nextAsyncEvent(d.d, Math.max(1, 50 / rdma.devs.size()));
                } catch (RuntimeException e) {
                    LOG.warning(e.getMessage());
                    LockSupport.parkNanos(50_000_000L);
                    continue;
                }
                if (ev != null) onEvent(d, ev);
            }
        }
    }

    private void onEvent(RdmaDevice d, VerbsLib.AsyncEvent ev) {
        switch (ev.type()) {
            case VerbsLib.EVENT_PORT_ERR -> {
                d.down = "port " + d.d.port() + " is down";
                LOG.warning("rdma device " + d.d.name() + ": " + d.down + "; transfers move to other paths");
                for (RdmaEndpoint ep : List.copyOf(d.endpoints)) ep.breakEndpoint(d.down);
            }
            case VerbsLib.EVENT_PORT_ACTIVE -> {
                if (!d.cqBroken) {
                    d.down = null;
                    LOG.info("rdma device " + d.d.name() + ": port " + d.d.port() + " is active again");
                }
            }
            case VerbsLib.EVENT_QP_FATAL, VerbsLib.EVENT_QP_REQ_ERR, VerbsLib.EVENT_QP_ACCESS_ERR -> {
                for (RdmaEndpoint ep : List.copyOf(d.endpoints)) {
                    QueuePair q = ep.qp;
                    if (q != null && q.handle.address() == ev.element()) ep.breakEndpoint("async event " + ev.type());
                }
                rdma.passive.entrySet().removeIf(e -> {
                    if (e.getValue().address() != ev.element()) return false;
                    rdma.verbs.destroyQp(e.getValue());
                    return true;
                });
            }
            case VerbsLib.EVENT_CQ_ERR -> cqBroken(d, "IBV_EVENT_CQ_ERR");
            case VerbsLib.EVENT_DEVICE_FATAL -> cqBroken(d, "IBV_EVENT_DEVICE_FATAL");
            default -> LOG.fine("rdma device " + d.d.name() + ": async event " + ev.type());
        }
    }
}
