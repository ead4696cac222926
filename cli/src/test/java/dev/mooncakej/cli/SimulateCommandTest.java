package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code simulate --capacity} (FAST Fig. 1) on a small Poisson workload: every system and TBT SLO gets a
 * capacity (the highest swept speed meeting the target), and a looser TBT SLO never lowers it.
 */
class SimulateCommandTest {
    private static JsonNode run(String... args) {
        PrintStream out = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertThat(new CommandLine(new SimulateCommand()).execute(args)).isZero();
        } finally {
            System.setOut(out);
        }
        return JsonMapper.builder().build().readTree(buf.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theCapacitySweepReportsEachSystemAtEachTbtSlo() {
        JsonNode r = run(
                "--poisson",
                "1,300,500,4000,50,200,0.4",
                "--prefill",
                "2",
                "--decode",
                "2",
                "--capacity",
                "0.5,1,2,4,8",
                "--attainment",
                "0.9",
                "--json");
        assertThat(r.size()).isEqualTo(4); // P/D and the three colocated variants
        r.properties().forEach(e -> {
            double last = -1;
            for (String slo : new String[] {"100ms", "200ms", "300ms"}) {
                double cap = e.getValue().path(slo).path("capacity_speed").asDouble(-1);
                assertThat(cap).as(e.getKey() + " at " + slo).isGreaterThanOrEqualTo(0);
                assertThat(cap)
                        .as(e.getKey() + ": a looser TBT SLO does not lower capacity")
                        .isGreaterThanOrEqualTo(last);
                last = cap;
            }
        });
        assertThat(r.path("P/D 2P+2D (kvcache-centric)")
                        .path("300ms")
                        .path("capacity_speed")
                        .asDouble())
                .isPositive();
    }
}
