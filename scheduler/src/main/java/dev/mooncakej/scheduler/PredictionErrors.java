package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * The last predictions of one quantity (TTFT or TBT) against what happened, as relative errors
 * {@code |predicted - actual| / actual}: the quantiles say how far the scheduler's estimates are from
 * the system it schedules (exported as metrics; a replay prints them). Not thread-safe: the live
 * scheduler's lock guards it.
 */
public final class PredictionErrors {
    private final double[] ring;
    private long n;

    public PredictionErrors(int window) {
        if (window < 1) throw new IllegalArgumentException("window " + window + ": expected >= 1");
        this.ring = new double[window];
    }

    public void add(double predicted, double actual) {
        if (!(actual > 0) || !Double.isFinite(predicted) || !Double.isFinite(actual)) return;
        ring[(int) (n++ % ring.length)] = Math.abs(predicted - actual) / actual;
    }

    /** Samples seen (all time). */
    public long count() {
        return n;
    }

    /** The {@code q} quantile (0..1) of the relative errors in the window, NaN when empty. */
    public double quantile(double q) {
        int k = (int) Math.min(n, ring.length);
        if (k == 0) return Double.NaN;
        double[] s = Arrays.copyOf(ring, k);
        Arrays.sort(s);
        return s[Math.min(k - 1, (int) Math.floor(q * k))];
    }
}
