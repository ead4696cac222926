package dev.mooncakej.scheduler;

import dev.mooncakej.kvcache.cost.CostProfile;

/**
 * Prefill time as a polynomial in input length n and cached prefix p (FAST section 4.1; the fit basis
 * follows the FLOPs of attention and the linear layers): {@code T = c0 + c1 (n - p) + c2 (n^2 - p^2)}.
 * Fitted by least squares from profiles the workers report, or taken from a {@link CostProfile}.
 */
public record PrefillTimeModel(double c0, double c1, double c2) {

    public static PrefillTimeModel of(CostProfile p) {
        return new PrefillTimeModel(p.prefillBase(), p.prefillPerToken(), p.prefillPerTokenSquared());
    }

    public double seconds(long n, long p) {
        return c0 + c1 * (n - p) + c2 * ((double) n * n - (double) p * p);
    }

    /** Least-squares fit (relative error) to samples (n[i], p[i], seconds[i]); at least 3 spanning the basis. */
    public static PrefillTimeModel fit(long[] n, long[] p, double[] seconds) {
        if (n.length < 3 || n.length != p.length || n.length != seconds.length) {
            throw new IllegalArgumentException(
                    "a prefill-time fit needs at least 3 samples of (input, cached, seconds); got " + n.length);
        }
        double[][] x = new double[n.length][];
        for (int i = 0; i < n.length; i++)
            x[i] = new double[] {1, n[i] - p[i], (double) n[i] * n[i] - (double) p[i] * p[i]};
        double[] c = LinearFit.solveRelative(x, seconds, "prefill-time");
        return new PrefillTimeModel(c[0], c[1], c[2]);
    }
}
