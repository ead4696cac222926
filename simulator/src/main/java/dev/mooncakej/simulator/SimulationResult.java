package dev.mooncakej.simulator;

/**
 * What a simulation reports (docs/SCHEDULING.md). A request's TBT is the mean of its largest 10% of
 * token gaps; it meets the SLOs when its TTFT and TBT are both within them.
 *
 * @param loadTimes   sample times (one per simulated second) of the two load series below
 */
public record SimulationResult(
        int requests,
        int completed,
        int rejected,
        int rejectedAtArrival,
        int rejectedAfterPrefill,
        double ttftMeanSeconds,
        double ttftP90Seconds,
        double tbtP90Seconds,
        double effectiveRequestRatio,
        int goodput,
        double wastedPrefillSeconds,
        double decodeLoadStd,
        double prefixHitRatioBlocks,
        double prefixHitRatioTokens,
        double prefillBusySeconds,
        double prefillUtilisation,
        double simulatedSeconds,
        double[] loadTimes,
        double[] prefillLoad,
        double[] decodeLoad) {}
