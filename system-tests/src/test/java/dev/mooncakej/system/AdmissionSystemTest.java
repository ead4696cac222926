package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Live predictive early rejection against early rejection on a load built for it: a burst of twelve
 * 1,500-token prompts reaches a fresh cluster (one prefill, one decode worker with KV for all of
 * them). Nothing is decoding yet, so early rejection, which looks at the decode worker as it is now,
 * admits the whole burst; predictive early rejection counts the requests it placed that will have
 * reached decode by the time each new one would (TR 7.4), sees the TBT over its SLO from about the
 * seventh on, and refuses those (429, decode load over 1). The SLO (12 ms, against the conductor's
 * starting step estimate of 5 ms + 1 ms per sequence + 0.1 us per context token) lets the first
 * half in: it is not so small that every mode rejects.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class AdmissionSystemTest {
    private static final int BURST = 12;

    /** The statuses of a burst of BURST completions sent at once. */
    private static List<Integer> burst(LocalCluster cluster) throws Exception {
        HttpClient http = LeakCheckingClient.wrap(
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build());
        StringBuilder ids = new StringBuilder();
        List<CompletableFuture<HttpResponse<String>>> calls = new ArrayList<>();
        for (int i = 0; i < BURST; i++) {
            ids.setLength(0);
            for (int t = 0; t < 1500; t++) ids.append(t == 0 ? "" : ",").append(16 + (t * 7 + i * 131) % 200);
            String body = "{\"model\":\"mooncakej-tiny\",\"prompt\":[" + ids + "],\"max_tokens\":4,\"temperature\":0}";
            calls.add(http.sendAsync(
                    HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                            .timeout(Duration.ofSeconds(120))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(body))
                            .build(),
                    HttpResponse.BodyHandlers.ofString()));
        }
        List<Integer> statuses = new ArrayList<>();
        for (var c : calls) {
            HttpResponse<String> r = c.get(150, TimeUnit.SECONDS);
            if (r.statusCode() == 429) assertThat(r.body()).contains("decode load");
            statuses.add(r.statusCode());
        }
        return statuses;
    }

    private static List<Integer> run(Path model, String admission) throws Exception {
        try (LocalCluster cluster = LocalCluster.start(
                model,
                1,
                1,
                // no start-up calibration: the SLO is set against the conductor's starting step estimate
                Map.of(
                        "MOONCAKEJ_DECODE_KVBLOCKS",
                        "2048",
                        "MOONCAKEJ_CONDUCTOR_TBTSLOSECONDS",
                        "0.012",
                        "MOONCAKEJ_DECODE_CALIBRATIONSECONDS",
                        "0",
                        "MOONCAKEJ_PREFILL_CALIBRATIONSECONDS",
                        "0"),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.5",
                "--admission",
                admission)) {
            return burst(cluster);
        }
    }

    @Test
    void predictiveEarlyRejectionRefusesWhatEarlyRejectionAdmits() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-admission");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        List<Integer> early = run(model, "early-rejection");
        List<Integer> predictive = run(model, "predictive-early-rejection");
        assertThat(early)
                .as("early rejection sees an idle decode worker: " + early)
                .containsOnly(200);
        long refused = predictive.stream().filter(s -> s == 429).count();
        long served = predictive.stream().filter(s -> s == 200).count();
        assertThat(refused)
                .as("predictive refuses the burst's tail: " + predictive)
                .isGreaterThanOrEqualTo(3);
        assertThat(served)
                .as("and admits its head (the SLO is not one every mode fails): " + predictive)
                .isGreaterThanOrEqualTo(3);
        assertThat(refused + served).isEqualTo(BURST);
    }
}
