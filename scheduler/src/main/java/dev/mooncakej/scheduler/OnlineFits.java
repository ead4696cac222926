package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * The scheduler's online learning, shared by the live conductor and the simulator: measured prefill
 * compute times refit the prefill-time model and measured decode steps the TBT model, continuously
 * (after every sample; decode steps every sample for the first {@value #EVERY_SAMPLE_STEPS}, then
 * every 8th, as the simulator reports every step), over the last {@value #WINDOW} samples weighted
 * by age (each older sample counts {@value #DECAY} times the next; 0.99 let the fit of the nearly
 * collinear n and n^2 terms follow the noise, 15% off at 2,000 tokens in HonestSimulationTest),
 * keeping every coefficient >= 0. The prefill model is that fit scaled by a drift that follows the
 * latest samples' one-step-ahead errors ({@value #DRIFT_GAIN} of the way per sample, within a factor
 * of {@value #MAX_DRIFT}), less the wander the measured noise alone gives it: when the machine slows
 * down or speeds up (a shared host, other work starting), the age weights take a hundred samples to
 * follow, the drift two or three; as the fit catches up, the errors it follows, and the scale, return
 * to none; under noise without a trend it stays about none.
 * A worker's start-up calibration enters as samples like any other ({@link #seedPrefill},
 * {@link #seedDecode}), so the first request is predicted from this cluster's engines, and the
 * measurements of real traffic outweigh them as they come. Not thread-safe (the caller's lock).
 */
public final class OnlineFits {
    static final int WINDOW = 256;
    static final double DECAY = 0.999;
    static final int EVERY_SAMPLE_STEPS = 64;
    private final ClusterScheduler core;
    private final long[] n = new long[WINDOW], p = new long[WINDOW];
    private final double[] t = new double[WINDOW], tw = new double[WINDOW];
    /** Which slots hold a calibration sample (the conductor's lone start-up requests) of the current pass. */
    private final boolean[] calibration = new boolean[WINDOW];

    private long prefills;
    private final double[] batch = new double[WINDOW], context = new double[WINDOW], step = new double[WINDOW];
    private final double[] sw = new double[WINDOW];

    /**
     * A start-up measurement's weight against a sample of real traffic: measured while every process
     * of the cluster was starting (JIT, the other workers calibrating), it guides the first
     * predictions and yields to the first real samples.
     */
    static final double SEED_WEIGHT = 0.05;

    private long steps;

    /**
     * How fast the prefill model's scale follows the latest measurements: each real sample moves the
     * log of the scale this fraction of the way to its own one-step-ahead error (the log of measured
     * over predicted, against the fit before it).
     */
    static final double DRIFT_GAIN = 0.4;

    /** The scale's bounds: a drift is a machine getting slower or faster, not a different model. */
    static final double MAX_DRIFT = 2;

    /** Real samples the fit must stand on before their errors move the drift. */
    static final int MIN_REAL_FOR_DRIFT = 3;

    private long realPrefills;

    /** The fit of the window, before the drift scale. */
    private PrefillTimeModel fitted;

    /** The log of the scale the fitted model is multiplied by (0: none), before the noise's allowance. */
    private double drift;

    /** How fast the noise estimate follows: slowly, so that a drift does not pass for noise. */
    static final double NOISE_GAIN = 0.05;

    /** The variance of the one-step errors' log (a 10% noise to start). */
    private double noise = 0.01;

    private double lastError = Double.NaN;

    public OnlineFits(ClusterScheduler core) {
        this.core = core;
    }

    /** A prefill of {@code inputTokens} with {@code cachedTokens} reused took {@code seconds} of compute. */
    public void prefill(long inputTokens, long cachedTokens, double seconds) {
        addPrefill(inputTokens, cachedTokens, seconds, 1);
    }

    private void addPrefill(long inputTokens, long cachedTokens, double seconds, double weight) {
        if (!(seconds > 0) || Double.isInfinite(seconds) || inputTokens <= cachedTokens) return;
        // a real sample, once the fit stands on real ones: how far off it was, before it learns from it
        // (against a fit of the start-up's seeds alone the first errors are 5-10x, which is no drift)
        if (weight >= 1 && realPrefills++ >= MIN_REAL_FOR_DRIFT && fitted != null) {
            double predicted = fitted.seconds(inputTokens, cachedTokens);
            if (predicted > 0) {
                double e = Math.log(seconds / predicted);
                // from consecutive errors' differences: a step in the machine's speed is one large
                // difference, not ten (the errors about the lagging drift would count it as noise)
                if (!Double.isNaN(lastError)) noise += NOISE_GAIN * ((e - lastError) * (e - lastError) / 2 - noise);
                lastError = e;
                drift += DRIFT_GAIN * (e - drift);
                drift = Math.max(-Math.log(MAX_DRIFT), Math.min(Math.log(MAX_DRIFT), drift));
            }
        }
        int i = (int) (prefills++ % WINDOW);
        calibration[i] = false;
        n[i] = inputTokens;
        p[i] = cachedTokens;
        t[i] = seconds;
        tw[i] = weight;
        refitPrefill();
    }

    /** A measurement of the conductor's own lone start-up request: a sample like a request's, until the next pass. */
    public void calibration(long inputTokens, long cachedTokens, double seconds) {
        long before = prefills;
        addPrefill(inputTokens, cachedTokens, seconds, 1);
        if (prefills > before) calibration[(int) ((prefills - 1) % WINDOW)] = true;
    }

    /** The calibration samples so far keep only a seed's weight: a newer pass measured warmer processes. */
    public void demoteCalibration() {
        boolean any = false;
        for (int i = 0; i < WINDOW; i++)
            if (calibration[i]) {
                calibration[i] = false;
                tw[i] = SEED_WEIGHT;
                any = true;
            }
        if (any) refitPrefill();
    }

    /** A worker's start-up measurement of one prefill (a sample of weight {@value #SEED_WEIGHT}). */
    public void seedPrefill(long inputTokens, long cachedTokens, double seconds) {
        addPrefill(inputTokens, cachedTokens, seconds, SEED_WEIGHT);
    }

    /** A worker's start-up measurement of a decode step. */
    public void seedDecode(double batchSize, double contextTokens, double seconds) {
        if (!(seconds > 0) || !(batchSize > 0) || Double.isInfinite(seconds)) return;
        addStep(batchSize, contextTokens, seconds, SEED_WEIGHT);
        refitDecode();
    }

    /** The weight of each slot of a ring holding {@code total} samples so far: its own, decayed by age. */
    private static double[] weights(long total, double[] own) {
        int k = (int) Math.min(total, WINDOW);
        double[] w = new double[k];
        for (int j = 0; j < k; j++) {
            long age =
                    ((total - 1) % WINDOW - j + WINDOW) % WINDOW; // the newest sample is in slot (total - 1) % WINDOW
            w[j] = own[j] * Math.pow(DECAY, age);
        }
        return w;
    }

    private void refitPrefill() {
        int k = (int) Math.min(prefills, WINDOW);
        if (k < 1) return;
        long longest = 0, shortest = Long.MAX_VALUE;
        for (int i = 0; i < k; i++) {
            longest = Math.max(longest, n[i] - p[i]);
            shortest = Math.min(shortest, n[i] - p[i]);
        }
        // the attention (n^2) term only where the lengths can tell it from the noise; else a straight line
        boolean quadratic = longest >= MIN_QUADRATIC_TOKENS && longest >= 4 * shortest;
        double[][] x = new double[k][];
        for (int i = 0; i < k; i++)
            x[i] = quadratic
                    ? new double[] {1, n[i] - p[i], (double) n[i] * n[i] - (double) p[i] * p[i]}
                    : new double[] {1, n[i] - p[i]};
        try {
            double[] c =
                    LinearFit.solveRelativeNonNegative(x, Arrays.copyOf(t, k), weights(prefills, tw), "prefill-time");
            fitted = new PrefillTimeModel(c[0], c[1], quadratic ? c[2] : 0);
            // the drift beyond what the noise alone would wander it (twice its standard deviation)
            double wander = 2 * Math.sqrt(noise * DRIFT_GAIN / (2 - DRIFT_GAIN));
            double scale = Math.exp(Math.signum(drift) * Math.max(0, Math.abs(drift) - wander));
            core.setPrefillModel(new PrefillTimeModel(c[0] * scale, c[1] * scale, fitted.c2() * scale));
        } catch (IllegalArgumentException notYet) {
            // the samples do not determine a fit yet: keep the current model
        }
    }

    private void addStep(double b, double c, double s, double weight) {
        int i = (int) (steps++ % WINDOW);
        sw[i] = weight;
        batch[i] = b;
        context[i] = c;
        step[i] = s;
    }

    /** {@code count} steps over {@code batchSum} sequences and {@code contextSum} tokens took {@code seconds}. */
    public void decodeSteps(int count, double seconds, long batchSum, long contextSum) {
        if (count <= 0 || !(seconds > 0) || batchSum <= 0 || Double.isInfinite(seconds)) return;
        addStep((double) batchSum / count, (double) contextSum / count, seconds / count, 1);
        if (steps <= EVERY_SAMPLE_STEPS || steps % 8 == 0) refitDecode();
    }

    private void refitDecode() {
        int k = (int) Math.min(steps, WINDOW);
        if (k < 1) return;
        double lo = Double.POSITIVE_INFINITY, hi = 0;
        for (int j = 0; j < k; j++) {
            lo = Math.min(lo, batch[j]);
            hi = Math.max(hi, batch[j]);
        }
        if (hi - lo < MIN_BATCH_SPAN) { // batch sizes too alike to separate the terms: rescale the model
            core.setDecodeModel(rescaled(core.decodeModel(), k));
            return;
        }
        double[][] x = new double[k][];
        for (int i = 0; i < k; i++) x[i] = new double[] {1, batch[i], context[i]};
        try {
            double[] c =
                    LinearFit.solveRelativeNonNegative(x, Arrays.copyOf(step, k), weights(steps, sw), "decode-step");
            core.setDecodeModel(new DecodeStepModel(c[0], c[1], c[2]));
        } catch (IllegalArgumentException notYet) {
            // not determined yet: keep the current model
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

    /**
     * The longest prefill (new tokens) the window must hold, four times its shortest, before the
     * prefill fit has an attention (n^2) term: over short prompts that term is below the noise of a
     * shared machine, and a free fit of 9- to 24-token prompts that took 0.04 to 1.7 s (a start-up under
     * load) put 80 s on a 954-token prompt and refused it (ClusterSystemTest). Below it the fit is a
     * straight line, which extrapolates at the per-token cost measured.
     */
    static final long MIN_QUADRATIC_TOKENS = 256;

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
