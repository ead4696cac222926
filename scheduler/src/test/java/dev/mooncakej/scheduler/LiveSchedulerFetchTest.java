package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

import dev.mooncakej.kvcache.cost.CostProfile;
import org.junit.jupiter.api.Test;

/** The fetch price follows what fetches took: measured bandwidth replaces the configured one. */
class LiveSchedulerFetchTest {
    private static final CostProfile PROFILE = new CostProfile("t", 0.01, 1e-4, 0, 0.005, 0.001, 1e-7, 1000);

    @Test
    void measuredFetchesSetTheBandwidthAlgorithmOnePricesAFetchAt() {
        SchedulerConfig cfg = new SchedulerConfig(
                PrefillPolicy.KVCACHE_CENTRIC, AdmissionMode.NONE, 30, 0.1, 1.0, 32, PROFILE, 5e9, 1_000_000, 1, 1);
        LiveScheduler live = new LiveScheduler(new ClusterScheduler(cfg, 0, 0, 0), () -> 0);
        assertThat(live.core().bandwidthBytesPerSecond()).isEqualTo(5e9);
        double before = live.core().transferSeconds(10);
        live.fetched(1000, 0.001); // 1000 tokens x 1000 B in 1 ms = 1 GB/s
        assertThat(live.core().bandwidthBytesPerSecond()).isCloseTo(1e9, offset(1.0));
        assertThat(live.core().transferSeconds(10)).isCloseTo(before * 5, offset(1e-12));
        live.fetched(1000, 0.0005); // 2 GB/s: the mean moves a fifth of the way
        assertThat(live.core().bandwidthBytesPerSecond()).isCloseTo(1.2e9, offset(1.0));
        live.fetched(0, 1); // nothing fetched: nothing learnt
        live.fetched(10, Double.NaN);
        assertThat(live.core().bandwidthBytesPerSecond()).isCloseTo(1.2e9, offset(1.0));
    }
}
