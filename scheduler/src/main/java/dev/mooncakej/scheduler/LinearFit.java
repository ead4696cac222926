package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * Ordinary least squares over a few features (the estimators have three): solves the normal equations
 * {@code (X^T X) c = X^T y} by Gaussian elimination with partial pivoting. Written here rather than
 * taken from a matrix library: three unknowns, on the scheduler's lock, allocation-light.
 */
final class LinearFit {
    private LinearFit() {}

    /**
     * The coefficients minimising the summed squared <em>relative</em> error {@code sum ((x[i] . c -
     * y[i]) / y[i])^2}: what the scheduler is judged by (a 10 ms error matters on a 50 ms prefill, not
     * on a 5 s one), and noise that grows with the measured time does not swamp the small terms.
     * Samples with {@code y <= 0} are skipped.
     */
    static double[] solveRelative(double[][] x, double[] y, String what) {
        int m = 0;
        for (double v : y) if (v > 0) m++;
        double[][] xs = new double[m][];
        double[] ones = new double[m];
        for (int i = 0, j = 0; i < y.length; i++) {
            if (!(y[i] > 0)) continue;
            xs[j] = new double[x[i].length];
            for (int c = 0; c < x[i].length; c++) xs[j][c] = x[i][c] / y[i];
            ones[j++] = 1;
        }
        if (m < x[0].length)
            throw new IllegalArgumentException(what + " samples: " + m + " positive times, need " + x[0].length);
        return solve(xs, ones, what);
    }

    /**
     * As {@link #solveRelative}, each sample weighted by {@code w[i]} (its squared relative error
     * counts that much), and every coefficient kept >= 0: of the fits over each subset of the
     * features (the others held at 0) whose coefficients are all non-negative, the one with the least
     * weighted error. A term the samples cannot pin down (a negative fitted c2 from noise at short
     * lengths) is dropped instead of refusing the whole fit, which would leave the estimator on its
     * old model. Throws when no subset is determined by the samples.
     */
    static double[] solveRelativeNonNegative(double[][] x, double[] y, double[] w, String what) {
        int k = x[0].length;
        double[] best = null;
        double bestErr = Double.POSITIVE_INFINITY;
        for (int mask : subsetsByPreference(k)) {
            int cols = Integer.bitCount(mask);
            int m = 0;
            for (int i = 0; i < y.length; i++) if (y[i] > 0 && w[i] > 0) m++;
            if (m < cols) continue;
            double[][] xs = new double[m][cols];
            double[] ys = new double[m];
            for (int i = 0, j = 0; i < y.length; i++) {
                if (!(y[i] > 0 && w[i] > 0)) continue;
                double r = Math.sqrt(w[i]) / y[i];
                for (int c = 0, d = 0; c < k; c++) if ((mask & (1 << c)) != 0) xs[j][d++] = x[i][c] * r;
                ys[j++] = Math.sqrt(w[i]);
            }
            double[] sub;
            try {
                sub = solve(xs, ys, what);
            } catch (IllegalArgumentException notDetermined) {
                continue;
            }
            double[] c = new double[k];
            boolean ok = true;
            for (int a = 0, d = 0; a < k; a++) {
                if ((mask & (1 << a)) == 0) continue;
                c[a] = sub[d++];
                if (!(c[a] >= 0) || !Double.isFinite(c[a])) ok = false;
            }
            if (!ok) continue;
            double err = 0;
            for (int i = 0; i < y.length; i++) {
                if (!(y[i] > 0 && w[i] > 0)) continue;
                double pred = 0;
                for (int a = 0; a < k; a++) pred += c[a] * x[i][a];
                double e = (pred - y[i]) / y[i];
                err += w[i] * e * e;
            }
            if (err < bestErr * (1 - 1e-9) - 1e-12) { // ties (e.g. two lengths fit exactly): the earlier subset stays
                bestErr = err;
                best = c;
            }
        }
        if (best == null)
            throw new IllegalArgumentException(what + " samples do not determine a fit (need varied inputs)");
        return best;
    }

    /**
     * Feature subsets in the order ties are settled: all features, then fewer, lower-order features
     * first (the features are ordered constant, linear, quadratic): with samples at two lengths only,
     * every two-term fit is exact, and a line extrapolates to longer prompts far better than a parabola.
     */
    static int[] subsetsByPreference(int k) {
        Integer[] masks = new Integer[(1 << k) - 1];
        for (int m = 1; m < 1 << k; m++) masks[m - 1] = m;
        Arrays.sort(
                masks,
                (a, b) -> Integer.bitCount(a) != Integer.bitCount(b)
                        ? Integer.bitCount(b) - Integer.bitCount(a)
                        : Integer.compare(Integer.highestOneBit(a), Integer.highestOneBit(b)) != 0
                                ? Integer.compare(Integer.highestOneBit(a), Integer.highestOneBit(b))
                                : Integer.compare(a, b));
        int[] out = new int[masks.length];
        for (int i = 0; i < out.length; i++) out[i] = masks[i];
        return out;
    }

    /**
     * The coefficients {@code c} minimising {@code sum (x[i] . c - y[i])^2}; {@code what} names the
     * estimator in the error when the samples do not determine them (e.g. all of one length).
     */
    static double[] solve(double[][] x, double[] y, String what) {
        int k = x[0].length;
        double[][] a = new double[k][k];
        double[] b = new double[k];
        double[] scale = new double[k]; // columns scaled to unit size: n^2 and 1 differ by 10^10
        for (double[] row : x) for (int c = 0; c < k; c++) scale[c] = Math.max(scale[c], Math.abs(row[c]));
        for (int c = 0; c < k; c++) if (scale[c] == 0) scale[c] = 1;
        for (int i = 0; i < x.length; i++) {
            for (int r = 0; r < k; r++) {
                double xr = x[i][r] / scale[r];
                b[r] += xr * y[i];
                for (int c = 0; c < k; c++) a[r][c] += xr * x[i][c] / scale[c];
            }
        }
        for (int col = 0; col < k; col++) {
            int piv = col;
            for (int r = col + 1; r < k; r++) if (Math.abs(a[r][col]) > Math.abs(a[piv][col])) piv = r;
            double[] t = a[col];
            a[col] = a[piv];
            a[piv] = t;
            double tb = b[col];
            b[col] = b[piv];
            b[piv] = tb;
            if (Math.abs(a[col][col]) < 1e-12 * x.length)
                throw new IllegalArgumentException(what + " samples do not determine the fit (need varied inputs)");
            for (int r = col + 1; r < k; r++) {
                double f = a[r][col] / a[col][col];
                for (int c = col; c < k; c++) a[r][c] -= f * a[col][c];
                b[r] -= f * b[col];
            }
        }
        double[] out = new double[k];
        for (int r = k - 1; r >= 0; r--) {
            double s = b[r];
            for (int c = r + 1; c < k; c++) s -= a[r][c] * out[c];
            out[r] = s / a[r][r];
        }
        for (int c = 0; c < k; c++) out[c] /= scale[c];
        return out;
    }
}
