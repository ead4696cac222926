package dev.mooncakej.simulator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.data.Offset.offset;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.SchedulerConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The simulator on small hand-built workloads whose timings can be computed by hand. */
class SimulationTest {
    @TempDir
    Path dir;

    /** prefill = 1 s + 1 ms per token computed; decode step = 10 ms; 1 kB per token of KV. */
    private static final CostProfile PROFILE = new CostProfile("hand", 1.0, 1e-3, 0, 0.01, 0, 0, 1000);

    private static SimulationConfig cfg(int prefill, double ttftSlo) {
        SchedulerConfig sc = new SchedulerConfig(
                PrefillPolicy.KVCACHE_CENTRIC,
                AdmissionMode.NONE,
                ttftSlo,
                0.1,
                1.5,
                100,
                PROFILE,
                1e12,
                1_000_000,
                1,
                1);
        return new SimulationConfig(sc, prefill, 1, 0, 100_000);
    }

    @Test
    void aLoneRequestTakesThePrefillThenOneStepPerToken() {
        TraceRequest r = new TraceRequest(0, 0, 1000, 5, new long[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
        SimulationResult res = new Simulation(cfg(1, 30), List.of(r), null).run();
        assertThat(res.completed()).isEqualTo(1);
        assertThat(res.ttftMeanSeconds()).isCloseTo(1.0 + 1000 * 1e-3, offset(1e-9)); // 2 s
        assertThat(res.tbtP90Seconds()).isCloseTo(0.01, offset(1e-9));
        assertThat(res.simulatedSeconds()).isGreaterThanOrEqualTo(2.04);
        assertThat(res.goodput()).isEqualTo(1);
        assertThat(res.prefixHitRatioBlocks()).isZero();
    }

    @Test
    void theRequestPathHopIsInEveryTtftAndInThePrediction() {
        TraceRequest r = new TraceRequest(0, 0, 1000, 5, new long[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
        SimulationConfig c = cfg(1, 30);
        SimulationConfig hop = new SimulationConfig(
                c.scheduler(), c.prefill(), c.decode(), c.cacheBlocks(), c.chunkTokens(), 0, 1, 0.25);
        Simulation sim = new Simulation(hop, List.of(r), null);
        assertThat(sim.scheduler().ttftOverheadSeconds()).isEqualTo(0.25);
        SimulationResult res = sim.run();
        assertThat(res.ttftMeanSeconds()).isCloseTo(2.0 + 0.25, offset(1e-9));
        // a 1,900-token prompt: 2.9 s predicted without the hop, 3.15 s with it, over a 3 s SLO
        TraceRequest longer = new TraceRequest(0, 0, 1900, 5, new long[] {1});
        assertThat(new Simulation(cfg(1, 3), List.of(longer), null).run().rejectedAtArrival())
                .isZero();
        SimulationConfig tight = cfg(1, 3);
        assertThat(new Simulation(
                                new SimulationConfig(tight.scheduler(), 1, 1, 0, tight.chunkTokens(), 0, 1, 0.25),
                                List.of(longer),
                                null)
                        .run()
                        .rejectedAtArrival())
                .isEqualTo(1);
    }

    @Test
    void aRepeatedPrefixIsReusedAndQueueingDelaysTheSecond() {
        long[] blocks = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        List<TraceRequest> t =
                List.of(new TraceRequest(0, 0, 1000, 2, blocks), new TraceRequest(1, 0.5, 1000, 2, blocks));
        SimulationResult res = new Simulation(cfg(1, 30), t, null).run();
        assertThat(res.completed()).isEqualTo(2);
        // the second arrives at 0.5 s, waits until 2 s, reuses 9 blocks (one token must be computed): 1 s + 100 ms
        assertThat(res.ttftMeanSeconds()).isCloseTo((2.0 + (2.0 + 1.1 - 0.5)) / 2, offset(1e-9));
        assertThat(res.prefixHitRatioBlocks()).isCloseTo(9.0 / 20, offset(1e-9));
    }

    @Test
    void requestsOverTheTtftSloAreRejectedAtArrival() {
        long[] blocks = {1};
        List<TraceRequest> t =
                List.of(new TraceRequest(0, 0, 100, 2, blocks), new TraceRequest(1, 0, 5000, 2, new long[] {7}));
        SimulationResult res = new Simulation(cfg(1, 3), t, null).run(); // 5000 tokens need 6 s > 3 s
        assertThat(res.rejectedAtArrival()).isEqualTo(1);
        assertThat(res.completed()).isEqualTo(1);
        assertThat(res.effectiveRequestRatio()).isCloseTo(0.5, offset(1e-9));
    }

    @Test
    void tbtIsTheMeanOfTheLargestTenthOfGaps() {
        double[] gaps = new double[20];
        for (int i = 0; i < 20; i++) gaps[i] = i;
        assertThat(Simulation.tbt(gaps)).isCloseTo((19 + 18) / 2.0, offset(1e-12));
        assertThat(Simulation.tbt(new double[] {0.3})).isEqualTo(0.3);
        assertThat(Simulation.tbt(new double[0])).isZero();
    }

    @Test
    void traceLinesAreValidatedWithTheirNumber() throws Exception {
        Path f = dir.resolve("t.jsonl");
        Files.writeString(
                f,
                "{\"timestamp\":0,\"input_length\":600,\"output_length\":3,\"hash_ids\":[1,2]}\n"
                        + "{\"timestamp\":5,\"input_length\":\"x\",\"output_length\":3,\"hash_ids\":[1]}\n");
        assertThatThrownBy(() -> Traces.read(f, 1))
                .hasMessageContaining("t.jsonl:2")
                .hasMessageContaining("input_length");
        Files.writeString(f, "{\"timestamp\":1000,\"input_length\":600,\"output_length\":3,\"hash_ids\":[1,2]}\n");
        List<TraceRequest> t = Traces.read(f, 2);
        assertThat(t.get(0).arrival()).isEqualTo(0.5);
        assertThat(t.get(0).blocks()).containsExactly(1, 2);
        assertThatThrownBy(() -> Traces.read(dir.resolve("none.jsonl"), 1)).hasMessageContaining("no such trace file");
    }

    @Test
    void traceStatsFollowsTheStatedHitDefinition() {
        List<TraceRequest> t = List.of(
                new TraceRequest(0, 0, 1024, 1, new long[] {1, 2}),
                new TraceRequest(1, 1, 1536, 1, new long[] {1, 2, 3}),
                new TraceRequest(2, 2, 1024, 1, new long[] {1, 9}));
        TraceStats.Result unbounded = TraceStats.of(t, 0, false, 512);
        assertThat(unbounded.hitRatioBlocks()).isCloseTo((0 + 2 + 1) / 7.0, offset(1e-12));
        assertThat(unbounded.hitRatioTokens()).isCloseTo((0 + 1024 + 512) / 3584.0, offset(1e-12));
        TraceStats.Result tiny = TraceStats.of(t, 1, false, 512); // only the last block survives
        assertThat(tiny.hitRatioBlocks()).isZero();
    }
}
