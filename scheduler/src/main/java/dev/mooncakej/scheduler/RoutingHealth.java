package dev.mooncakej.scheduler;

import java.util.ArrayDeque;
import java.util.Map;
import java.util.TreeMap;

/**
 * Whether cache-aware routing still gets the hits it routes for: per prefill worker, the prefix
 * tokens the scheduler predicted each request would reuse there against the cached tokens the worker
 * reports it used, over a sliding window of {@code windowSeconds}. Routing is degraded for a worker
 * when, within the window, at least {@value #MIN_PREDICTED} requests were predicted to hit and the
 * worker reported under {@value #DEGRADED_RATIO} of the predicted tokens: hits stopped silently (a
 * worker that wiped its cache, a key mismatch, a dead report stream), which no error shows. Callers
 * give the time; thread-safe.
 */
public final class RoutingHealth {
    static final int MIN_PREDICTED = 3;
    static final double DEGRADED_RATIO = 0.1;

    private record Sample(double at, long predicted, long reported) {}

    private final double windowSeconds;
    private final Map<String, ArrayDeque<Sample>> byWorker = new TreeMap<>();

    public RoutingHealth(double windowSeconds) {
        if (!(windowSeconds > 0)) throw new IllegalArgumentException("window " + windowSeconds + " s: expected > 0");
        this.windowSeconds = windowSeconds;
    }

    /** A prefill on {@code worker} ended: {@code predicted} prefix tokens were counted on, {@code reported} reused. */
    public synchronized void observe(String worker, long predicted, long reported, double now) {
        ArrayDeque<Sample> q = byWorker.computeIfAbsent(worker, w -> new ArrayDeque<>());
        q.addLast(new Sample(now, Math.max(0, predicted), Math.max(0, reported)));
        while (q.size() > 4096) q.removeFirst();
        expire(q, now);
    }

    private void expire(ArrayDeque<Sample> q, double now) {
        while (!q.isEmpty() && q.peekFirst().at() < now - windowSeconds) q.removeFirst();
    }

    /** One worker's window: predicted and reported prefix tokens, and the gap 1 - reported / predicted. */
    public record Window(long requestsPredicted, long predictedTokens, long reportedTokens, double gap) {
        public boolean degraded() {
            return requestsPredicted >= MIN_PREDICTED && reportedTokens < DEGRADED_RATIO * predictedTokens;
        }
    }

    /** Each worker's window now. */
    public synchronized Map<String, Window> windows(double now) {
        Map<String, Window> out = new TreeMap<>();
        for (var e : byWorker.entrySet()) {
            expire(e.getValue(), now);
            long n = 0, p = 0, r = 0;
            for (Sample s : e.getValue()) {
                if (s.predicted() > 0) n++;
                p += s.predicted();
                r += Math.min(s.reported(), s.predicted()); // hits beyond the prediction do not hide missing ones
            }
            out.put(e.getKey(), new Window(n, p, r, p == 0 ? 0 : Math.max(0, 1 - (double) r / p)));
        }
        return out;
    }

    /** The workers whose routing is degraded now, with why. */
    public Map<String, String> degraded(double now) {
        Map<String, String> out = new TreeMap<>();
        windows(now).forEach((w, win) -> {
            if (win.degraded())
                out.put(
                        w,
                        win.requestsPredicted() + " requests in the last " + (long) windowSeconds
                                + " s were routed for " + win.predictedTokens() + " cached prefix tokens; the worker"
                                + " reported reusing " + win.reportedTokens());
        });
        return out;
    }

    /** Forgets a worker (it left). */
    public synchronized void forget(String worker) {
        byWorker.remove(worker);
    }
}
