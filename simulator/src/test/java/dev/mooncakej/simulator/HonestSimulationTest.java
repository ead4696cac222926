package dev.mooncakej.simulator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.PrefillTimeModel;
import dev.mooncakej.scheduler.SchedulerConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The simulator's ground truth is not its scheduler's estimate, and the colocated baseline runs as
 * vLLM does: one forward pass per iteration, the chunk size honoured, prefix caching and cache-aware
 * routing each making the difference they should.
 */
class HonestSimulationTest {
    private static final CostProfile PROFILE = CostProfile.llama3_70bOn8xA800();

    private static SchedulerConfig sc(AdmissionMode a) {
        return new SchedulerConfig(
                PrefillPolicy.KVCACHE_CENTRIC, a, 30, 0.1, 1.5, 512, PROFILE, 12.5e9, 200_000, 10, 1);
    }

    private static List<TraceRequest> workload(int count, double rate, double cacheRatio, long seed) {
        return Traces.poisson(count, rate, 1000, 8000, 50, 300, cacheRatio, 512, seed);
    }

    @Test
    void theSchedulerStartsWrongAndLearnsTheTrueTimesOnline() {
        // estimates start at twice the truth; true times are the profile's with 20% noise
        var cfg = new SimulationConfig(sc(AdmissionMode.NONE), 4, 4, 6000, 4096, 0.2, 2.0);
        Simulation sim = new Simulation(cfg, workload(600, 2, 0.3, 3), null);
        assertThat(sim.scheduler().prefillModel().c1()).isCloseTo(2 * PROFILE.prefillPerToken(), within(1e-12));
        sim.run();
        PrefillTimeModel learnt = sim.scheduler().prefillModel();
        PrefillTimeModel truth = PrefillTimeModel.of(PROFILE);
        // 2x off at the start; the fit of the n and n^2 terms over samples with 20% noise lands 8-10% off
        // at 2,000 tokens, depending on which requests the scheduler's early choices produced
        for (long n : new long[] {2000, 8000})
            assertThat(learnt.seconds(n, 0))
                    .as("learnt from noisy measurements, not the starting guess")
                    .isCloseTo(truth.seconds(n, 0), within(0.12 * truth.seconds(n, 0)));
        // the TBT model from per-step samples with 20% noise, batch and context moving together: 15%
        double step = PROFILE.decodeStepSeconds(32, 32 * 4000L);
        assertThat(sim.scheduler().decodeModel().seconds(32, 32 * 4000L))
                .as("started at %s", 2 * step)
                .isCloseTo(step, within(0.15 * step));
    }

    @Test
    void noiseChangesWhatHappensNotTheWorkload() {
        var quiet = new Simulation(
                        new SimulationConfig(sc(AdmissionMode.NONE), 2, 2, 6000, 4096, 0, 1),
                        workload(300, 1, 0.3, 5),
                        null)
                .run();
        var noisy = new Simulation(
                        new SimulationConfig(sc(AdmissionMode.NONE), 2, 2, 6000, 4096, 0.3, 1),
                        workload(300, 1, 0.3, 5),
                        null)
                .run();
        assertThat(noisy.completed()).isEqualTo(quiet.completed());
        assertThat(noisy.ttftMeanSeconds()).isNotEqualTo(quiet.ttftMeanSeconds());
        assertThat(noisy.prefillBusySeconds())
                .isCloseTo(quiet.prefillBusySeconds(), within(0.15 * quiet.prefillBusySeconds()));
    }

    private static ColocatedSimulation colocated(
            int instances, int chunk, boolean chunked, boolean caching, boolean routing) {
        return new ColocatedSimulation(
                PROFILE, instances, 512, chunk, chunked, caching, 6000, 200_000, 30, 0.1, routing);
    }

    @Test
    void aChunkAndADecodeBatchInOneIterationCostOneForwardPass() {
        ColocatedSimulation c = colocated(1, 2048, true, true, false);
        PrefillTimeModel m = PrefillTimeModel.of(PROFILE);
        double prefillAlone = c.iterationSeconds(4096, 4096 + 2048, 0, 0);
        double decodeAlone = c.iterationSeconds(0, 0, 16, 16 * 3000L);
        double both = c.iterationSeconds(4096, 4096 + 2048, 16, 16 * 3000L);
        assertThat(prefillAlone).isCloseTo(m.seconds(4096 + 2048, 4096), within(1e-12));
        assertThat(decodeAlone).isCloseTo(PROFILE.decodeStepSeconds(16, 16 * 3000L), within(1e-12));
        // one pass: the fixed cost (the weights read) once, not twice
        assertThat(both).isCloseTo(prefillAlone + decodeAlone - Math.min(m.c0(), PROFILE.decodeBase()), within(1e-12));
        assertThat(both).isLessThan(prefillAlone + decodeAlone);
    }

    @Test
    void theChunkSizeIsHonouredAndPrefixCachingAndCacheAwareRoutingMatter() {
        List<TraceRequest> w = workload(400, 1.5, 0.6, 9);
        var small = colocated(4, 256, true, true, false).run(w);
        var large = colocated(4, 8192, true, true, false).run(w);
        assertThat(small.tbtP90Seconds())
                .as("smaller chunks interrupt decode less: TBT %s vs %s", small.tbtP90Seconds(), large.tbtP90Seconds())
                .isLessThan(large.tbtP90Seconds());
        assertThat(small.ttftMeanSeconds()).isNotEqualTo(large.ttftMeanSeconds());

        var off = colocated(4, 2048, true, false, false).run(w);
        var on = colocated(4, 2048, true, true, false).run(w);
        assertThat(off.prefixHitRatioTokens()).isZero();
        assertThat(on.prefixHitRatioTokens()).isPositive();
        assertThat(on.prefillBusySeconds())
                .as("cached prefixes are not computed again")
                .isLessThan(off.prefillBusySeconds());

        var routed = colocated(4, 2048, true, true, true).run(w);
        assertThat(routed.prefixHitRatioTokens())
                .as("cache-aware routing finds the instance holding the prefix")
                .isGreaterThan(on.prefixHitRatioTokens());
    }
}
