package dev.mooncakej.kvtransfer.rdma;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.verbs.VerbsLib;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * An endpoint of the rdma transport: one RC queue pair ({@link QueuePair}) to one device of one peer,
 * with its life (connecting by handshake, ready, draining after a failure, closed), the slices waiting
 * for it and the work requests it has in flight.
 */
final class RdmaEndpoint {
    private static final Logger LOG = Logger.getLogger(RdmaEndpoint.class.getName());

    private final RdmaTransport rdma;
    final String key;
    final RdmaDevice dev;
    final SegmentDescriptor peer;
    final String remoteDevice;
    private final ArrayDeque<Object[]> waiting = new ArrayDeque<>();
    private final Set<Long> inflight = new HashSet<>();
    private RdmaTransport.State state = RdmaTransport.State.NEW;
    volatile QueuePair qp;
    private int outstanding;
    private boolean starving;
    private boolean forced;
    private boolean retired;
    private long deadline;

    /** Cheap (no native call): the pool creates endpoints under its lock. */
    RdmaEndpoint(RdmaTransport rdma, String key, RdmaDevice dev, SegmentDescriptor peer, String remoteDevice) {
        this.rdma = rdma;
        this.key = key;
        this.dev = dev;
        this.peer = peer;
        this.remoteDevice = remoteDevice;
    }

    void start() {
        synchronized (this) {
            if (state != RdmaTransport.State.NEW) return;
            state = RdmaTransport.State.CONNECTING;
        }
        dev.endpoints.add(this);
        try {
            rdma.connector.execute(this::connect);
        } catch (RejectedExecutionException e) {
            breakEndpoint("rdma transport is closing");
        }
    }

    /** The handshake, on a connector thread. */
    private void connect() {
        MemorySegment q = null;
        try {
            q = rdma.verbs.createRcQp(dev.d, dev.d.plan().sendWr());
            byte[] reply = rdma.rpc.apply(
                    peer.name(), RdmaTransport.JSON.writeValueAsBytes(rdma.ours(dev, remoteDevice, VerbsLib.qpNum(q))));
            RdmaHandshake h =
                    RdmaTransport.JSON.readValue(reply, RdmaHandshake.class).validated();
            rdma.verbs.connect(dev.d, q, RdmaTransport.remoteOf(dev, h), rdma.settings);
        } catch (RuntimeException e) {
            if (q != null) rdma.verbs.destroyQp(q);
            List<RdmaTransport.Failure> failures = new ArrayList<>();
            synchronized (this) {
                breakLocked(
                        "rdma handshake with '" + peer.name() + "' (" + key + ") failed: " + e.getMessage(),
                        failures,
                        true); // the path failed each waiting slice: they count towards a downgrade
                destroyLocked();
            }
            rdma.fire(failures);
            return;
        }
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        synchronized (this) {
            if (state
                    != RdmaTransport.State.CONNECTING) { // broken or retired while connecting: nothing was posted on it
                rdma.verbs.destroyQp(q);
                destroyLocked();
                return;
            }
            qp = new QueuePair(q);
            state = RdmaTransport.State.READY;
            drain(failures);
            finishIfDone();
        }
        rdma.fire(failures);
    }

    /** Posts a slice now, queues it while connecting or while the QP or the device is full. */
    void post(Slice s, long remoteAddr, int rkey) {
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        synchronized (this) {
            if (state == RdmaTransport.State.DRAINING || state == RdmaTransport.State.CLOSED)
                failures.add(new RdmaTransport.Failure(s, "rdma endpoint " + key + " is closed"));
            else {
                waiting.add(new Object[] {s, remoteAddr, rkey});
                if (state == RdmaTransport.State.READY) drain(failures);
            }
        }
        rdma.fire(failures);
    }

    /** Fills the prepared work requests from the queue and posts them as chains. Holds the lock. */
    private void drain(List<RdmaTransport.Failure> failures) {
        int limit = dev.d.plan().sendWr();
        while (state == RdmaTransport.State.READY && !waiting.isEmpty() && outstanding < limit) {
            int want = Math.min(QueuePair.CHAIN, Math.min(waiting.size(), limit - outstanding));
            int n = dev.acquire(want);
            if (n == 0) { // the device's CQ is full of work in flight: wait for completions
                if (!starving) {
                    starving = true;
                    dev.starved.add(this);
                }
                if (dev.credits.get() > 0) continue; // a completion came in meanwhile
                return;
            }
            long[] ids = new long[n];
            int filled = 0;
            for (int i = 0; i < n; i++) {
                Object[] w = waiting.poll();
                Slice s = (Slice) w[0];
                RdmaTransport.Region r = rdma.regionOf(s.local);
                if (r == null) {
                    failures.add(new RdmaTransport.Failure(s, "local memory is not registered for rdma"));
                    continue;
                }
                long id = rdma.nextWr.getAndIncrement();
                ids[filled] = id;
                rdma.posted.put(id, new RdmaTransport.Posted(s, this));
                inflight.add(id);
                qp.add(s.write, id, (long) w[1], (int) w[2], s.local, r.lkeys()[dev.index]);
                filled++;
            }
            if (filled < n) dev.credits.addAndGet(n - filled);
            if (filled == 0) continue;
            int rc = qp.post();
            if (rc != 0) {
                // nothing of a failed chain is trusted to be queued: take it back, then break the endpoint
                for (int i = 0; i < filled; i++) {
                    RdmaTransport.Posted p = rdma.posted.remove(ids[i]);
                    inflight.remove(ids[i]);
                    if (p != null)
                        failures.add(new RdmaTransport.Failure(
                                p.slice(), "ibv_post_send on " + key + " failed: " + rc, true));
                }
                dev.credits.addAndGet(filled);
                breakLocked("ibv_post_send failed: " + rc, failures, false);
                return;
            }
            outstanding += filled;
        }
    }

    /** The poller reaped one of this endpoint's completions. */
    void completed(long id, int status, List<RdmaTransport.Failure> failures) {
        synchronized (this) {
            inflight.remove(id);
            outstanding--;
            if (status != VerbsLib.WC_SUCCESS && state == RdmaTransport.State.READY)
                breakLocked("work completion status " + status, failures, false);
            if (state == RdmaTransport.State.READY) drain(failures);
            finishIfDone();
        }
    }

    void resume() {
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        synchronized (this) {
            starving = false;
            drain(failures);
        }
        rdma.fire(failures);
    }

    /** A failed completion, async event or post: the QP goes to ERROR (its work flushes), it leaves the pool. */
    void breakEndpoint(String reason) {
        List<RdmaTransport.Failure> failures = new ArrayList<>();
        synchronized (this) {
            breakLocked(reason, failures, false);
        }
        rdma.fire(failures);
    }

    /** A retired endpoint whose work all finished, or a broken one drained: the QP can go. */
    private void finishIfDone() {
        if (outstanding > 0) return;
        if (state == RdmaTransport.State.DRAINING
                || (retired && state == RdmaTransport.State.READY && waiting.isEmpty())) destroyLocked();
    }

    void breakLocked(String reason, List<RdmaTransport.Failure> failures, boolean cause) {
        if (state == RdmaTransport.State.DRAINING || state == RdmaTransport.State.CLOSED) return;
        boolean connected = state == RdmaTransport.State.READY, connecting = state == RdmaTransport.State.CONNECTING;
        LOG.fine(() -> "rdma endpoint " + key + " broke: " + reason);
        state = RdmaTransport.State.DRAINING;
        rdma.pool.remove(key, this);
        for (Object[] w : waiting)
            failures.add(new RdmaTransport.Failure((Slice) w[0], "rdma endpoint " + key + " broke: " + reason, cause));
        waiting.clear();
        if (connected && outstanding > 0) {
            try {
                rdma.verbs.toError(qp.handle);
            } catch (RuntimeException e) {
                LOG.fine("moving " + key + " to ERROR: " + e.getMessage());
            }
        }
        deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(rdma.settings.drainMillis());
        if (outstanding == 0 && !connecting) destroyLocked();
        else rdma.retiring.add(this); // the connector or the poller finishes it
    }

    /**
     * Eviction or close: the pool hands it out no more, but what it already holds (queued or in
     * flight) is finished; then the QP is destroyed. Past drain-millis it breaks and its work is
     * retried elsewhere.
     */
    void retire() {
        synchronized (this) {
            if (retired || state == RdmaTransport.State.DRAINING || state == RdmaTransport.State.CLOSED) return;
            retired = true;
            rdma.pool.remove(key, this);
            deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(rdma.settings.drainMillis());
            if (state == RdmaTransport.State.NEW) destroyLocked();
            else if (state == RdmaTransport.State.READY && outstanding == 0 && waiting.isEmpty()) destroyLocked();
            else rdma.retiring.add(this);
        }
    }

    /** Past the deadline: first flush the QP, then fail what is still in flight and destroy it. */
    void checkDeadline(long now, List<RdmaTransport.Failure> failures) {
        synchronized (this) {
            if (now < deadline || state == RdmaTransport.State.CLOSED || state == RdmaTransport.State.CONNECTING)
                return;
            if (state == RdmaTransport.State.READY) { // retired, and still not done: break it, its work goes elsewhere
                breakLocked(
                        "retired endpoint still busy after " + rdma.settings.drainMillis() + " ms", failures, false);
                return;
            }
            if (outstanding > 0 && !forced && qp != null) {
                forced = true;
                try {
                    rdma.verbs.toError(qp.handle);
                } catch (RuntimeException e) {
                    LOG.fine("moving " + key + " to ERROR: " + e.getMessage());
                }
                deadline = now + TimeUnit.MILLISECONDS.toNanos(rdma.settings.drainMillis());
                return;
            }
            failInflight("no completion within " + rdma.settings.drainMillis() + " ms", failures);
            if (qp != null || outstanding == 0) destroyLocked();
        }
    }

    /** Fails every request in flight explicitly (their completions will never be reaped). Holds the lock. */
    void failInflight(String reason, List<RdmaTransport.Failure> failures) {
        for (Long id : inflight) {
            RdmaTransport.Posted p = rdma.posted.remove(id);
            if (p != null) {
                failures.add(new RdmaTransport.Failure(p.slice(), "rdma endpoint " + key + ": " + reason));
                dev.credits.incrementAndGet();
                rdma.forcedFailures.incrementAndGet();
            }
        }
        inflight.clear();
        outstanding = 0;
    }

    void destroyLocked() {
        if (state == RdmaTransport.State.CLOSED) return;
        state = RdmaTransport.State.CLOSED;
        if (qp != null) {
            rdma.verbs.destroyQp(qp.handle);
            qp.close();
        }
        qp = null;
        dev.endpoints.remove(this);
        rdma.retiring.remove(this);
    }
}
