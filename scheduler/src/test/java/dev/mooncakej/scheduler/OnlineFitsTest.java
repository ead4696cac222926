package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvcache.cost.CostProfile;
import org.junit.jupiter.api.Test;

/** The online prefill fit: what it may extrapolate from. */
class OnlineFitsTest {
    private static final CostProfile ANY = new CostProfile("any", 0.01, 1e-4, 1e-8, 0.01, 0, 0, 1000);

    private static ClusterScheduler scheduler() {
        return new ClusterScheduler(
                new SchedulerConfig(
                        PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE, 1000, 10, 1.5, 32, ANY, 1e9, 1 << 20, 10, 1),
                1,
                1,
                0);
    }

    @Test
    void shortPromptsMeasuredUnderLoadGiveAStraightLineNotAParabola() {
        // seen in ClusterSystemTest: a start-up's calibration and 9- to 24-token prompts on a loaded machine
        ClusterScheduler s = scheduler();
        OnlineFits f = new OnlineFits(s);
        f.seedPrefill(16, 0, 0.48);
        f.seedPrefill(64, 0, 1.02);
        double[][] seen = {
            {10, .275},
            {9, .116},
            {9, .134},
            {9, .044},
            {23, .172},
            {23, .284},
            {23, .593},
            {24, .750},
            {24, 1.273},
            {24, 1.664},
            {15, .038},
            {15, .113},
            {15, .027}
        };
        for (double[] r : seen) f.prefill((long) r[0], 0, r[1]);
        PrefillTimeModel m = s.prefillModel();
        assertThat(m.c2())
                .as("no attention term from prompts of at most 64 tokens")
                .isZero();
        // a straight line through these: tens of milliseconds per token at most, not 80 s for 954 tokens
        assertThat(m.seconds(954, 0)).isLessThan(954 * 0.05);
    }

    @Test
    void lengthsThatSpanTheRangeFitTheAttentionTerm() {
        ClusterScheduler s = scheduler();
        OnlineFits f = new OnlineFits(s);
        for (int n = 32; n <= 4096; n *= 2) f.prefill(n, 0, 0.005 + 1e-4 * n + 2e-8 * n * n);
        PrefillTimeModel m = s.prefillModel();
        assertThat(m.c2()).isPositive();
        assertThat(m.seconds(3000, 0)).isBetween(0.95 * (0.005 + 0.3 + 0.18), 1.05 * (0.005 + 0.3 + 0.18));
    }
}
