package dev.mooncakej.engine.spi;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.sim.SimulatedEngine;
import dev.mooncakej.kvcache.cost.CostProfile;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The start-up calibration on the simulated engine: what it keeps and
 * how it spends its budget.
 */
class CalibrationTest {
    /** 50 ms + 1 ms per token of prefill; the sleeps add to a clock instead of taking time. */
    private static final CostProfile SLOW = new CostProfile("slow", 0.05, 1e-3, 0, 0.002, 1e-4, 1e-7, 64);

    @Test
    void theTwoShortestLengthsAreMeasuredEvenPastTheBudget() {
        AtomicLong slept = new AtomicLong();
        try (SimulatedEngine e =
                new SimulatedEngine(SimulatedEngine.Config.of(TestModels.tiny(), SLOW), slept::addAndGet)) {
            // a budget smaller than one run: a start-up slowed by its neighbours still gives a slope
            List<Calibration.PrefillSample> s = Calibration.prefill(e, 512, 4096, 1e-6);
            assertThat(s).extracting(Calibration.PrefillSample::inputTokens).containsExactly(16, 64);
            assertThat(slept.get()).as("modelled prefill time").isPositive();
        }
    }

    @Test
    void noBudgetMeansNoMeasurement() {
        try (SimulatedEngine e = new SimulatedEngine(SimulatedEngine.Config.of(TestModels.tiny(), SLOW), n -> {})) {
            assertThat(Calibration.prefill(e, 512, 4096, 0)).isEmpty();
        }
    }
}
