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
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.json.JsonMapper;

/**
 * Issue 28's graceful drain and KV-transfer deadline, on a simulated cluster of two prefill and two
 * decode workers over tcp (a 4 s drain budget, a 1 s prefill deadline floor, a 3 s fence deadline):
 * <ol>
 *   <li>SIGTERM to the decode worker holding the most of 20 streams of 200 tokens (half greedy, half
 *       seeded): it leaves scheduling, hands its streams back, and exits within its budget holding
 *       nothing; every stream
 *       completes equal to an undisturbed run's, token for token, with no error event;
 *   <li>a prefill worker SIGSTOPped mid-transfer: its requests pass their deadline, are placed again
 *       and complete; the reservations it was writing are released by the fence deadline;
 *   <li>{@code POST /internal/drain} (refused without the cluster credential) drains that prefill
 *       worker, which exits within its budget while requests sent meanwhile are all served.
 * </ol>
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class DrainSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int STREAMS = 20, TOKENS = 200, BUDGET_SECONDS = 4;
    private static final long FENCE_DEADLINE_MILLIS = 3000;

    @Test
    void drainedAndStoppedWorkersLoseNoRequest() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-drain");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        HttpClient http = LeakCheckingClient.create();
        try (LocalCluster cluster = LocalCluster.start(
                model,
                2,
                2,
                Map.of(
                        "MOONCAKEJ_DECODE_DRAINBUDGETSECONDS", String.valueOf(BUDGET_SECONDS),
                        "MOONCAKEJ_PREFILL_DRAINBUDGETSECONDS", String.valueOf(BUDGET_SECONDS),
                        "MOONCAKEJ_CONDUCTOR_PREFILLDEADLINEMILLIS", "1000",
                        "MOONCAKEJ_DECODE_FENCEDEADLINEMILLIS", String.valueOf(FENCE_DEADLINE_MILLIS),
                        "MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS", "3600"),
                "--kv-transports",
                "tcp",
                "--engine",
                "simulated",
                "--sim-time-scale",
                "2")) {
            int survivor = sigtermedDecodeWorkerHandsItsStreamsOn(http, cluster);
            int stopped = stoppedPrefillWorkersRequestsArePlacedAgain(http, cluster, survivor);
            drainAskedOverTheInternalPlane(http, cluster, stopped);
        }
    }

    /** Phase 1; returns the decode worker left. */
    private static int sigtermedDecodeWorkerHandsItsStreamsOn(HttpClient http, LocalCluster cluster) throws Exception {
        ReferenceStreams streams = new ReferenceStreams(http, cluster, STREAMS, TOKENS);
        var reference = streams.reference();
        ReferenceStreams.Run run = streams.stream();
        run.underWay(10);
        int victim = streams.busiestDecode(2);
        long held = (long) LocalCluster.metric(cluster.decodeUrl(victim), "mooncakej_decode_batch_size");
        ProcessHandle p = ReferenceStreams.worker(cluster.port + 20 + victim);
        System.out.println(
                "SIGTERM to decode worker " + victim + ", which holds " + held + " of " + STREAMS + " streams");
        long t0 = System.nanoTime();
        assertThat(p.destroy()).as("SIGTERM sent").isTrue();
        p.onExit().get(BUDGET_SECONDS + 30, TimeUnit.SECONDS);
        long exitMillis = (System.nanoTime() - t0) / 1_000_000;
        run.await(reference);
        System.out.println("the drained worker exited after " + exitMillis + " ms; longest pause of a stream "
                + run.longestGapMillis() + " ms");
        assertThat(held).as("the drained worker held streams").isPositive();
        assertThat(exitMillis)
                .as("the drained worker exits within its %d s budget (and the JVM's exit)", BUDGET_SECONDS)
                .isLessThan(BUDGET_SECONDS * 1000L + 10_000);
        assertThat(cluster.log("decode-" + victim))
                .as("the drained worker's account of its drain")
                .containsPattern("drained in \\d+ ms: [1-9]\\d* streams handed off to be continued elsewhere; "
                        + "nothing held");
        assertThat(LocalCluster.metric(cluster.url(), "mooncakej_stream_migrations_total{reason=\"drained\""))
                .as("its streams moved, counted as drained")
                .isPositive();
        assertThat(LocalCluster.metric(cluster.url(), "mooncakej_stream_migrations_total{reason=\"lost\""))
                .as("none was lost")
                .isZero();
        int survivor = 1 - victim;
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (LocalCluster.metric(cluster.decodeUrl(survivor), "mooncakej_kv_blocks_used") > 0
                && System.nanoTime() < until) Thread.sleep(50);
        assertThat(LocalCluster.metric(cluster.decodeUrl(survivor), "mooncakej_kv_blocks_used"))
                .as("the other decode worker holds nothing afterwards")
                .isZero();
        return survivor;
    }

    /** Phase 2; returns the prefill worker that was stopped (and continued again). */
    private static int stoppedPrefillWorkersRequestsArePlacedAgain(HttpClient http, LocalCluster cluster, int decode)
            throws Exception {
        Random rnd = new Random(11);
        List<CompletableFuture<HttpResponse<String>>> requests = new ArrayList<>();
        for (int c = 0; c < 8; c++) {
            List<Integer> ids = new ArrayList<>(List.of(1 + c)); // the tiny model's vocabulary: 256
            for (int i = 0; i < 399; i++) ids.add(1 + rnd.nextInt(250));
            String body = JSON.writeValueAsString(Map.of("model", "mooncakej-tiny", "prompt", ids, "max_tokens", 4));
            requests.add(http.sendAsync(
                    HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                            .timeout(Duration.ofSeconds(90))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(body))
                            .build(),
                    HttpResponse.BodyHandlers.ofString()));
        }
        int busiest = cluster.busiestPrefill(2);
        assertThat(busiest)
                .as("a prefill worker with prefills running or queued")
                .isNotNegative();
        ProcessHandle stopped = ReferenceStreams.worker(cluster.port + 10 + busiest);
        signal(stopped, "STOP");
        long stoppedAt = System.nanoTime();
        try {
            for (var r : requests) {
                HttpResponse<String> got = r.get(90, TimeUnit.SECONDS);
                assertThat(got.statusCode())
                        .as("a request with prefill-%d stopped: %s", busiest, got.body())
                        .isEqualTo(200);
            }
            System.out.println("every request served " + (System.nanoTime() - stoppedAt) / 1_000_000
                    + " ms after prefill-" + busiest + " was stopped");
            assertThat(LocalCluster.metric(cluster.url(), "mooncakej_prefill_replaced_total{reason=\"deadline\""))
                    .as("prefills placed again past their deadline")
                    .isPositive();
            String url = cluster.decodeUrl(decode) + "/internal/status";
            long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(FENCE_DEADLINE_MILLIS + 10_000);
            while (JSON.readTree(LocalCluster.get(url)).get("fencedBlocks").asInt() > 0 && System.nanoTime() < until)
                Thread.sleep(100);
            assertThat(JSON.readTree(LocalCluster.get(url)).get("fencedBlocks").asInt())
                    .as(
                            "blocks the stopped writer held, %d ms after it stopped",
                            (System.nanoTime() - stoppedAt) / 1_000_000)
                    .isZero();
            assertThat(LocalCluster.metric(cluster.decodeUrl(decode), "mooncakej_kv_blocks_used"))
                    .as("the decode worker holds nothing once every request ended")
                    .isZero();
        } finally {
            signal(stopped, "CONT");
        }
        return busiest;
    }

    /** Phase 3. */
    private static void drainAskedOverTheInternalPlane(HttpClient http, LocalCluster cluster, int prefill)
            throws Exception {
        String drain = cluster.prefillUrl(prefill) + "/internal/drain";
        HttpResponse<String> anonymous = http.send(
                HttpRequest.newBuilder(URI.create(drain))
                        .POST(HttpRequest.BodyPublishers.noBody())
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(anonymous.statusCode())
                .as("a drain without the cluster credential")
                .isEqualTo(401);
        ProcessHandle p = ReferenceStreams.worker(cluster.port + 10 + prefill);
        long t0 = System.nanoTime();
        HttpResponse<String> asked = LocalCluster.post(drain, "");
        assertThat(asked.statusCode())
                .as("the drain, with the credential: %s", asked.body())
                .isEqualTo(202);
        assertThat(asked.body()).contains("\"budgetMillis\":" + BUDGET_SECONDS * 1000);
        List<CompletableFuture<HttpResponse<String>>> meanwhile = new ArrayList<>();
        for (int i = 0; i < 6; i++)
            meanwhile.add(http.sendAsync(
                    HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                            .timeout(Duration.ofSeconds(90))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(
                                    "{\"model\":\"mooncakej-tiny\",\"prompt\":\"while it drains " + i
                                            + "\",\"max_tokens\":4}"))
                            .build(),
                    HttpResponse.BodyHandlers.ofString()));
        p.onExit().get(BUDGET_SECONDS + 30, TimeUnit.SECONDS);
        long exitMillis = (System.nanoTime() - t0) / 1_000_000;
        assertThat(exitMillis)
                .as("the drained prefill worker exits within its budget")
                .isLessThan(BUDGET_SECONDS * 1000L + 10_000);
        for (var r : meanwhile) {
            HttpResponse<String> got = r.get(90, TimeUnit.SECONDS);
            assertThat(got.statusCode())
                    .as("a request sent while prefill-%d drained: %s", prefill, got.body())
                    .isEqualTo(200);
        }
        assertThat(cluster.log("prefill-" + prefill))
                .contains("drain asked over the internal plane")
                .contains("drained in");
    }

    private static void signal(ProcessHandle p, String sig) throws Exception {
        assertThat(new ProcessBuilder("kill", "-" + sig, String.valueOf(p.pid()))
                        .start()
                        .waitFor())
                .as("kill -%s %d", sig, p.pid())
                .isZero();
    }
}
