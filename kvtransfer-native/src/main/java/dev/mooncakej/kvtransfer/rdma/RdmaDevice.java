package dev.mooncakej.kvtransfer.rdma;

import dev.mooncakej.kvtransfer.verbs.VerbsDevice;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/** One opened device and what the rdma transport tracks about it: its CQ credits, endpoints and health. */
final class RdmaDevice {
    final VerbsDevice d;
    final int index;
    final AtomicInteger credits;
    final Set<RdmaEndpoint> endpoints = ConcurrentHashMap.newKeySet();
    final ConcurrentLinkedQueue<RdmaEndpoint> starved = new ConcurrentLinkedQueue<>();
    volatile String down;
    volatile boolean cqBroken;

    RdmaDevice(VerbsDevice d, int index) {
        this.d = d;
        this.index = index;
        this.credits = new AtomicInteger(d.plan().cqEntries());
    }

    /** Takes up to n completion-queue credits; returns how many it got. */
    int acquire(int n) {
        while (true) {
            int c = credits.get();
            int take = Math.min(c, n);
            if (take <= 0) return 0;
            if (credits.compareAndSet(c, c - take)) return take;
        }
    }
}
