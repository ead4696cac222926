package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code ./mooncakej replay} against a live simulated-engine cluster ({@code up --engine simulated
 * --policy kvcache-centric --admission early-rejection}, time scale 0.2): the first 200 requests of
 * the paper's conversation trace (system-tests/src/test/resources/traces holds its first 300 lines)
 * at a third of its speed and a sixteenth of its lengths (a hash id is 32 tokens, the live block),
 * prompts cut to the tiny model's context. It prints every field {@code simulate} prints for the same
 * options, and the conductor's live estimators have learnt from the run: the prefill-time and TBT
 * fits from the workers' reports, the decode capacity from the workers, and TTFT predictions whose
 * median relative error over the last 128 requests is below {@value #TTFT_ERROR_BOUND}, the stated
 * bound (measured here: 0.28; before the conductor learnt its own hop overhead, 0.95).
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class ReplaySystemTest {
    static final double TTFT_ERROR_BOUND = 0.5;
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private static JsonNode run(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(
                List.of(LocalCluster.projectRoot().resolve("mooncakej").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .directory(LocalCluster.projectRoot().toFile())
                .redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().put("MOONCAKEJ_NO_BUILD", "1");
        pb.environment().putAll(env);
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        p.getInputStream().transferTo(out);
        assertThat(p.waitFor(5, TimeUnit.MINUTES)).isTrue();
        String text = out.toString(StandardCharsets.UTF_8);
        assertThat(p.exitValue()).as(text).isZero();
        return JSON.readTree(
                text.lines().filter(l -> l.startsWith("{")).reduce((a, b) -> b).orElse("{}"));
    }

    @Test
    void aReplayPrintsSimulatesFieldsAndTheLiveEstimatorsConverge() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-replay");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        Path trace =
                LocalCluster.projectRoot().resolve("system-tests/src/test/resources/traces/conversation-head.jsonl");
        String[] common = {
            "--trace",
            trace.toString(),
            "--requests",
            "200",
            "--speed",
            "0.3",
            "--length-scale",
            "0.0625",
            "--max-input",
            "1900",
            "--json"
        };
        try (LocalCluster cluster = LocalCluster.start(
                model,
                2,
                2,
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.2",
                "--policy",
                "kvcache-centric",
                "--admission",
                "early-rejection")) {
            List<String> a = new ArrayList<>(List.of("replay", "--target", cluster.url(), "--time-scale", "0.2"));
            a.addAll(List.of(common));
            JsonNode live = run(Map.of("MOONCAKEJ_CLUSTER_SECRET", LocalCluster.secret), a.toArray(String[]::new));
            List<String> s = new ArrayList<>(List.of(
                    "simulate",
                    "--prefill",
                    "2",
                    "--decode",
                    "2",
                    "--policy",
                    "kvcache-centric",
                    "--admission",
                    "early-rejection"));
            s.addAll(List.of(common));
            JsonNode sim = run(Map.of(), s.toArray(String[]::new));

            List<String> missing = new ArrayList<>();
            sim.propertyNames().forEach(k -> {
                if (!live.has(k)) missing.add(k);
            });
            assertThat(missing)
                    .as("simulate's fields missing from replay's output: " + live)
                    .isEmpty();
            assertThat(live.path("requests").asInt()).isEqualTo(200);
            assertThat(live.path("completed").asInt()).as(live.toString()).isGreaterThan(150);
            assertThat(live.path("policy").asString()).isEqualTo("kvcache-centric");
            assertThat(live.path("admission").asString()).isEqualTo("early-rejection");
            assertThat(live.path("prefix_hit_ratio_tokens").asDouble())
                    .as("the trace's shared prefixes reach the live cache")
                    .isGreaterThan(0.02);
            assertThat(live.path("ttft_mean_s").asDouble()).isPositive();

            JsonNode est = live.path("estimators");
            assertThat(est.path("prefill").path("samples").asLong()).isGreaterThanOrEqualTo(150);
            assertThat(est.path("decode_step").path("samples").asLong())
                    .as("the decode workers report their steps")
                    .isPositive();
            int port = Integer.parseInt(cluster.url().substring(cluster.url().lastIndexOf(':') + 1));
            JsonNode status = JSON.readTree(LeakCheckingClient.create()
                    .send(
                            LocalCluster.request("http://127.0.0.1:" + (port + 20) + "/internal/status")
                                    .build(),
                            HttpResponse.BodyHandlers.ofString())
                    .body());
            long capacity = status.path("capacityBlocks").asLong()
                    * status.path("blockTokens").asLong();
            assertThat(capacity).isPositive().isNotEqualTo(1_000_000L);
            assertThat(est.path("decode_capacity_tokens")
                            .path("http://127.0.0.1:" + (port + 20))
                            .asLong())
                    .as("the capacity the worker reports, not the configured guess: " + est)
                    .isEqualTo(capacity);
            System.out.println("TTFT prediction error after the run: " + est.path("ttft_error"));
            assertThat(est.path("ttft_error").path("p50").asDouble())
                    .as("TTFT prediction error after the run: " + est)
                    .isLessThan(TTFT_ERROR_BOUND);
        }
    }
}
