package dev.mooncakej.engine.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector helpers whose results do not depend on whether the JIT has compiled the caller: only
 * lane-wise IEEE operations (add, mul, fma, conversions), never library reductions or transcendental
 * intrinsics, whose order or approximation may differ between interpreted and compiled code. That
 * keeps a row's result independent of what else is in the batch and of when the JIT kicked in.
 */
public final class LaneMath {
    static final VectorSpecies<Float> F = WeightMatrix.F;
    static final int L = F.length();

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float MIN_X = -87.33654f;
    private static final float MAX_X = 88.0f;

    private LaneMath() {}

    // lane i <-> lane i ^ k: constant shuffles, which C2 turns into single permutes
    private static final VectorShuffle<Float> X8 = L >= 16 ? VectorShuffle.fromOp(F, i -> i ^ 8) : null;
    private static final VectorShuffle<Float> X4 = L >= 8 ? VectorShuffle.fromOp(F, i -> i ^ 4) : null;
    private static final VectorShuffle<Float> X2 = L >= 4 ? VectorShuffle.fromOp(F, i -> i ^ 2) : null;
    private static final VectorShuffle<Float> X1 = L >= 2 ? VectorShuffle.fromOp(F, i -> i ^ 1) : null;

    /**
     * Sum of the lanes in a fixed pairwise order (lane i with lane i + n/2, halving until one lane is
     * left). {@code reduceLanes(ADD)} may add in another order once intrinsified than interpreted;
     * {@code slice} with a variable origin, or many of them in one method, is not always intrinsified
     * and then allocates. Constant shuffles are both deterministic and allocation-free.
     */
    public static float sum(FloatVector v) {
        switch (L) {
            case 16 -> {
                v = v.add(v.rearrange(X8));
                v = v.add(v.rearrange(X4));
                v = v.add(v.rearrange(X2));
                v = v.add(v.rearrange(X1));
            }
            case 8 -> {
                v = v.add(v.rearrange(X4));
                v = v.add(v.rearrange(X2));
                v = v.add(v.rearrange(X1));
            }
            case 4 -> {
                v = v.add(v.rearrange(X2));
                v = v.add(v.rearrange(X1));
            }
            case 2 -> v = v.add(v.rearrange(X1));
            default -> {}
        }
        return v.lane(0);
    }

    /**
     * e^x with a relative error of about 2 ulp (Cephes' expf: x = n ln2 + r, a degree-6 polynomial in
     * r, times 2^n), from lane-wise operations only and without masks (which would allocate when not
     * intrinsified). x is clamped to [-87.3, 88], so the result is never 0 or infinite: at most
     * e^88 = 1.65e38 and at least 1.2e-38, which softmax and SiLU do not notice.
     */
    public static FloatVector exp(FloatVector x) {
        x = x.max(MIN_X).min(MAX_X);
        // floor(x log2e + 0.5) by truncating a positive number (x log2e + 0.5 + 128 > 0 on the clamped range)
        IntVector ni = ((IntVector) x.mul(LOG2E).add(0.5f + 128f).convert(VectorOperators.F2I, 0)).sub(128);
        FloatVector n = (FloatVector) ni.convert(VectorOperators.I2F, 0);
        FloatVector r = x.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
        FloatVector p = FloatVector.broadcast(F, 1.9875691500e-4f);
        p = p.fma(r, FloatVector.broadcast(F, 1.3981999507e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(F, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(F, 5.0000001201e-1f));
        p = p.fma(r.mul(r), r).add(1f);
        FloatVector scale = ni.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale);
    }

    /** {@code x[i] = silu(x[i]) * y[i]} (SwiGLU), silu(g) = g / (1 + e^-g). */
    public static void swiglu(float[] x, float[] y, int n) {
        int i = 0;
        for (int upper = F.loopBound(n); i < upper; i += L) {
            FloatVector g = FloatVector.fromArray(F, x, i);
            FloatVector e = exp(g.neg());
            g.div(e.add(1f)).mul(FloatVector.fromArray(F, y, i)).intoArray(x, i);
        }
        for (; i < n; i++) x[i] = x[i] / (exp(-x[i]) + 1f) * y[i];
    }

    /**
     * {@code s[i] = e^(s[i] - max)} for i in [0, n); returns the sum of the results, added in index order in double.
     */
    public static double expShifted(float[] s, int n, float max) {
        int i = 0;
        FloatVector m = FloatVector.broadcast(F, max);
        for (int upper = F.loopBound(n); i < upper; i += L) {
            exp(FloatVector.fromArray(F, s, i).sub(m)).intoArray(s, i);
        }
        for (; i < n; i++) s[i] = exp(s[i] - max);
        // a scalar sum: a horizontal vector sum here is a call C2 may not inline, and then it allocates
        double sum = 0;
        for (int j = 0; j < n; j++) sum += s[j];
        return sum;
    }

    /** Scalar e^x computed exactly as {@link #exp(FloatVector)} computes each lane. */
    public static float exp(float x) {
        x = Math.min(Math.max(x, MIN_X), MAX_X);
        int ni = (int) (x * LOG2E + (0.5f + 128f)) - 128;
        float n = ni;
        float r = x - n * LN2_HI - n * LN2_LO;
        float p = 1.9875691500e-4f;
        p = Math.fma(p, r, 1.3981999507e-3f);
        p = Math.fma(p, r, 8.3334519073e-3f);
        p = Math.fma(p, r, 4.1665795894e-2f);
        p = Math.fma(p, r, 1.6666665459e-1f);
        p = Math.fma(p, r, 5.0000001201e-1f);
        p = Math.fma(p, r * r, r) + 1f;
        return p * Float.intBitsToFloat((ni + 127) << 23);
    }
}
