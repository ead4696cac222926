package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Smoke test of {@code ./mooncakej bench transfer}: a small run per transport prints one JSON object
 * with the engine's figures and its anchors (iperf3, installed by ./mooncakej test; SocketChannel;
 * two-thread copy), and a bad option is refused with a message. The figures are not judged here
 * (performance lives in docs/BENCHMARKS.md); that they are measured and positive is.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class TransferBenchTest {
    private static String run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            int code = new CommandLine(new MooncakeCli()).execute(args);
            assertThat(code).as("exit code of %s", String.join(" ", args)).isZero();
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void tcpAndShmPrintTheirFiguresAndAnchorsAsJson() {
        JsonNode tcp = JsonMapper.builder()
                .build()
                .readTree(run(
                        "bench",
                        "transfer",
                        "--transport",
                        "tcp",
                        "--total",
                        "64MiB",
                        "--latency-request",
                        "128KiB",
                        "--json"));
        for (String k : new String[] {
            "gb_per_s",
            "p50_ms",
            "p99_ms",
            "iperf3_gb_per_s",
            "socketchannel_gb_per_s",
            "ratio_to_iperf3",
            "latency_p99_ms"
        }) {
            assertThat(tcp.path(k).asDouble()).as(k).isPositive();
        }
        JsonNode shm = JsonMapper.builder()
                .build()
                .readTree(run(
                        "bench",
                        "transfer",
                        "--transport",
                        "shm",
                        "--total",
                        "64MiB",
                        "--latency-request",
                        "0",
                        "--json"));
        for (String k : new String[] {"gb_per_s", "p50_ms", "p99_ms", "memcpy_2t_gb_per_s", "ratio_to_memcpy_2t"}) {
            assertThat(shm.path(k).asDouble()).as(k).isPositive();
        }
    }

    @Test
    void aBadTransportOrSizeIsRefusedWithTheExpectedForm() {
        PrintStream oldErr = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            assertThat(new CommandLine(new MooncakeCli()).execute("bench", "transfer", "--transport", "carrier-pigeon"))
                    .isNotZero();
            assertThat(new CommandLine(new MooncakeCli()).execute("bench", "transfer", "--total", "lots"))
                    .isNotZero();
        } finally {
            System.setErr(oldErr);
        }
        assertThat(err.toString(StandardCharsets.UTF_8))
                .contains("carrier-pigeon")
                .contains("expected tcp or shm")
                .contains("lots");
    }
}
