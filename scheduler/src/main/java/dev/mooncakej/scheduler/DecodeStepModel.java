package dev.mooncakej.scheduler;

import dev.mooncakej.kvcache.cost.CostProfile;

/**
 * The time of one decode step (one token for every running request) as a function of the batch size
 * and the context tokens the batch attends over: {@code T = base + perSequence * batch +
 * perContextToken * context} (the weights are read once per step; each sequence adds its share of the
 * linear layers; attention reads every cached token). TBT is this step time. Fitted by least squares
 * from the steps the decode workers report, or taken from a {@link CostProfile} until then.
 */
public record DecodeStepModel(double base, double perSequence, double perContextToken) {
    public static DecodeStepModel of(CostProfile p) {
        return new DecodeStepModel(p.decodeBase(), p.decodePerSequence(), p.decodePerContextToken());
    }

    public double seconds(int batch, long contextTokens) {
        if (batch <= 0) return 0;
        return base + perSequence * batch + perContextToken * contextTokens;
    }

    /** Least squares (relative error) over (mean batch, mean context, mean step seconds); at least 3 samples. */
    public static DecodeStepModel fit(double[] batch, double[] context, double[] seconds) {
        if (batch.length < 3 || batch.length != context.length || batch.length != seconds.length)
            throw new IllegalArgumentException(
                    "a decode-step fit needs at least 3 samples of (batch, context, seconds); got " + batch.length);
        double[][] x = new double[batch.length][];
        for (int i = 0; i < batch.length; i++) x[i] = new double[] {1, batch[i], context[i]};
        double[] c = LinearFit.solveRelative(x, seconds, "decode-step");
        return new DecodeStepModel(c[0], c[1], c[2]);
    }
}
