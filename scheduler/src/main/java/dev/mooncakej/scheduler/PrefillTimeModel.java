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

    /** Least-squares fit to samples (n[i], p[i], seconds[i]); needs at least 3 samples spanning the basis. */
    public static PrefillTimeModel fit(long[] n, long[] p, double[] seconds) {
        if (n.length < 3 || n.length != p.length || n.length != seconds.length) {
            throw new IllegalArgumentException(
                    "a prefill-time fit needs at least 3 samples of (input, cached, seconds); got " + n.length);
        }
        double[][] a = new double[3][3];
        double[] b = new double[3];
        for (int i = 0; i < n.length; i++) {
            double[] x = {1, n[i] - p[i], (double) n[i] * n[i] - (double) p[i] * p[i]};
            for (int r = 0; r < 3; r++) {
                b[r] += x[r] * seconds[i];
                for (int c = 0; c < 3; c++) a[r][c] += x[r] * x[c];
            }
        }
        double[] c = solve3(a, b);
        return new PrefillTimeModel(c[0], c[1], c[2]);
    }

    private static double[] solve3(double[][] a, double[] b) { // Gaussian elimination with partial pivoting
        int n = 3;
        for (int col = 0; col < n; col++) {
            int piv = col;
            for (int r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[piv][col])) piv = r;
            double[] t = a[col];
            a[col] = a[piv];
            a[piv] = t;
            double tb = b[col];
            b[col] = b[piv];
            b[piv] = tb;
            if (Math.abs(a[col][col]) < 1e-300)
                throw new IllegalArgumentException(
                        "prefill-time samples do not determine the fit (need varied input and cached lengths)");
            for (int r = col + 1; r < n; r++) {
                double f = a[r][col] / a[col][col];
                for (int c = col; c < n; c++) a[r][c] -= f * a[col][c];
                b[r] -= f * b[col];
            }
        }
        double[] x = new double[n];
        for (int r = n - 1; r >= 0; r--) {
            double s = b[r];
            for (int c = r + 1; c < n; c++) s -= a[r][c] * x[c];
            x[r] = s / a[r][r];
        }
        return x;
    }
}
