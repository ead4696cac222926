package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * TR Table 3 on the simulator: the paper's conversation trace (all of it, gzipped in the test
 * resources) on 8 prefill + 8 decode instances at 1x with 10 GB of KV per decode instance, the
 * setting where decode binds. Rejections must run none > early rejection > predictive early
 * rejection, as the paper's 4,183 / 3,771 / 3,589. Before decode selection counted the KV reserved
 * by requests still in prefill, the order ran backwards (4,068 / 4,190 / 4,383): a burst piled onto
 * one decode instance, which admission then refused.
 */
class AdmissionOrderTest {
    private static JsonNode simulate(String admission) throws URISyntaxException {
        Path trace = Path.of(AdmissionOrderTest.class
                .getResource("/traces/conversation_trace.jsonl.gz")
                .toURI());
        PrintStream out = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertThat(new CommandLine(new SimulateCommand())
                            .execute(
                                    "--trace",
                                    trace.toString(),
                                    "--prefill",
                                    "8",
                                    "--decode",
                                    "8",
                                    "--speed",
                                    "1",
                                    "--decode-kv-gb",
                                    "10",
                                    "--admission",
                                    admission,
                                    "--json"))
                    .isZero();
        } finally {
            System.setOut(out);
        }
        String text = buf.toString(StandardCharsets.UTF_8);
        return JsonMapper.builder()
                .build()
                .readTree(text.lines()
                        .filter(l -> l.startsWith("{"))
                        .reduce((a, b) -> b)
                        .orElseThrow());
    }

    @Test
    void rejectionsRunNoneThenEarlyThenPredictiveAsInTheTrsTable3() throws Exception {
        JsonNode none = simulate("none"), early = simulate("early-rejection");
        JsonNode predictive = simulate("predictive-early-rejection");
        String table = "none " + none.path("rejected") + ", early " + early.path("rejected") + ", predictive "
                + predictive.path("rejected");
        System.out.println("Table 3 on the simulator: " + table);
        assertThat(none.path("rejected").asInt())
                .as(table)
                .isGreaterThan(early.path("rejected").asInt());
        assertThat(early.path("rejected").asInt())
                .as(table)
                .isGreaterThan(predictive.path("rejected").asInt());
        assertThat(predictive.path("wasted_prefill_seconds").asDouble())
                .as("prediction wastes the least prefill: " + table)
                .isLessThan(early.path("wasted_prefill_seconds").asDouble())
                .isLessThan(none.path("wasted_prefill_seconds").asDouble());
    }
}
