package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * The scheduler's online learning, shared by the live conductor and the simulator: measured prefill
 * compute times refit the prefill-time model (every 16 samples, over the last 256), measured decode
 * steps refit the TBT model (every 8, over the last 256), and each new fit replaces the core's model
 * when its coefficients are usable. Not thread-safe (the caller's lock guards it).
 */
public final class OnlineFits {
    static final int WINDOW = 256;
    private final ClusterScheduler core;
    private final long[] n = new long[WINDOW], p = new long[WINDOW];
    private final double[] t = new double[WINDOW];
    private long prefills;
    private final double[] batch = new double[WINDOW], context = new double[WINDOW], step = new double[WINDOW];
    private long steps;

    public OnlineFits(ClusterScheduler core) {
        this.core = core;
    }

    /** A prefill of {@code inputTokens} with {@code cachedTokens} reused took {@code seconds} of compute. */
    public void prefill(long inputTokens, long cachedTokens, double seconds) {
        if (!(seconds > 0) || Double.isInfinite(seconds)) return;
        int i = (int) (prefills++ % WINDOW);
        n[i] = inputTokens;
        p[i] = cachedTokens;
        t[i] = seconds;
        if (prefills >= 16 && prefills % 16 == 0) {
            int k = (int) Math.min(prefills, WINDOW);
            try {
                PrefillTimeModel m =
                        PrefillTimeModel.fit(Arrays.copyOf(n, k), Arrays.copyOf(p, k), Arrays.copyOf(t, k));
                if (m.c1() >= 0 && m.c2() >= 0) core.setPrefillModel(m);
            } catch (IllegalArgumentException notYet) {
                // the samples do not determine a fit yet (e.g. all the same length): keep the current model
            }
        }
    }

    /** {@code count} steps over {@code batchSum} sequences and {@code contextSum} tokens took {@code seconds}. */
    public void decodeSteps(int count, double seconds, long batchSum, long contextSum) {
        if (count <= 0 || !(seconds > 0) || batchSum <= 0 || Double.isInfinite(seconds)) return;
        int i = (int) (steps++ % WINDOW);
        batch[i] = (double) batchSum / count;
        context[i] = (double) contextSum / count;
        step[i] = seconds / count;
        if (steps >= 8 && steps % 8 == 0) {
            int k = (int) Math.min(steps, WINDOW);
            double lo = Double.POSITIVE_INFINITY, hi = 0;
            for (int j = 0; j < k; j++) {
                lo = Math.min(lo, batch[j]);
                hi = Math.max(hi, batch[j]);
            }
            if (hi - lo < MIN_BATCH_SPAN) { // batch sizes too alike to separate the terms: rescale the model
                core.setDecodeModel(rescaled(core.decodeModel(), k));
                return;
            }
            try {
                DecodeStepModel m =
                        DecodeStepModel.fit(Arrays.copyOf(batch, k), Arrays.copyOf(context, k), Arrays.copyOf(step, k));
                if (m.base() >= 0 && m.perSequence() >= 0 && m.perContextToken() >= 0) core.setDecodeModel(m);
                else if (m.base() > 0 || m.perSequence() > 0) // a fit with a negative term: keep what is positive
                core.setDecodeModel(new DecodeStepModel(
                        Math.max(0, m.base()), Math.max(0, m.perSequence()), Math.max(0, m.perContextToken())));
            } catch (IllegalArgumentException notYet) {
                // one batch size and context so far: keep the current model
            }
        }
    }

    /**
     * The smallest spread of batch sizes in the window that a three-term TBT fit is trusted on: below
     * it (a lightly loaded worker, batch 1 or 2 all along) the three terms are not separable, and a
     * free fit extrapolates wildly to the next batch size (seen: every request refused after its
     * prefill at a quarter load). There the current model's shape is kept and only its scale follows
     * the measurements.
     */
    static final double MIN_BATCH_SPAN = 4;

    /** The model scaled so that its mean prediction over the window equals the mean measured step. */
    private DecodeStepModel rescaled(DecodeStepModel m, int k) {
        double predicted = 0, measured = 0;
        for (int j = 0; j < k; j++) {
            predicted += m.base() + m.perSequence() * batch[j] + m.perContextToken() * context[j];
            measured += step[j];
        }
        if (!(predicted > 0) || !(measured > 0)) return m;
        double f = Math.max(0.2, Math.min(5, measured / predicted));
        return new DecodeStepModel(m.base() * f, m.perSequence() * f, m.perContextToken() * f);
    }

    public long prefillSamples() {
        return prefills;
    }

    public long stepSamples() {
        return steps;
    }
}
