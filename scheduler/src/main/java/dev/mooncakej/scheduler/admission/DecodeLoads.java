package dev.mooncakej.scheduler.admission;

/**
 * What an admission mode reads of the cluster: a decode instance's load with one more request, now or
 * at a future time. The scheduler implements it; the modes depend on this view, not on the scheduler
 * (no package cycle).
 */
public interface DecodeLoads {
    /** Decode instance {@code d}'s load at time {@code t} (predicted) with this request added. */
    double chosenLoadAt(double t, int d, int inputTokens, int kvTokens);

    /** Decode instance {@code d}'s load as it is now with this request added. */
    double chosenLoadNow(int d, int inputTokens, int kvTokens);
}
