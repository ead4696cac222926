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
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Issue 28's stream migration, by recompute: 20 greedy streams of 200 tokens on a simulated cluster of
 * one prefill and two decode workers (LLaMA3-70B timing, twice as slow, so a stream lasts seconds);
 * once every stream is under way, the decode worker holding the most of them is SIGKILLed. Every
 * stream completes, without an error event, with exactly the tokens of an undisturbed run of the same
 * request (the token lists compared, so a token lost or repeated shows), 200 of them in the usage;
 * the conductor counts the moves, and the surviving worker holds no KV block afterwards.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class MigrationSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int STREAMS = 20, TOKENS = 200;

    private static String body(int i, boolean stream) {
        List<Integer> prompt = new ArrayList<>();
        for (int k = 0; k < 40; k++) prompt.add(3 + (i * 31 + k * 7) % 200);
        return "{\"model\":\"mooncakej-tiny\",\"prompt\":" + prompt + ",\"max_tokens\":" + TOKENS
                + ",\"temperature\":0,\"ignore_eos\":true,\"logprobs\":1"
                + (stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "") + "}";
    }

    /** One stream as the client saw it: its tokens, text, finish reason, usage, and any error event. */
    private static final class Seen {
        final List<String> tokens = new ArrayList<>();
        final StringBuilder text = new StringBuilder();
        final AtomicInteger chunks = new AtomicInteger();
        volatile String finish, error;
        volatile int completionTokens = -1;
    }

    @Test
    void theStreamsOfAKilledDecodeWorkerGoOnElsewhereWithNoTokenLostOrRepeated() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-migration");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        HttpClient http = LeakCheckingClient.create();
        try (LocalCluster cluster =
                LocalCluster.start(model, 1, 2, Map.of(), "--engine", "simulated", "--sim-time-scale", "2")) {
            // the undisturbed run, all at once
            List<CompletableFuture<HttpResponse<String>>> refs = new ArrayList<>();
            for (int i = 0; i < STREAMS; i++)
                refs.add(http.sendAsync(post(cluster, body(i, false)), HttpResponse.BodyHandlers.ofString()));
            List<List<String>> reference = new ArrayList<>();
            for (var f : refs) {
                JsonNode r = JSON.readTree(f.get(120, TimeUnit.SECONDS).body());
                List<String> tokens = new ArrayList<>();
                r.get("choices").get(0).get("logprobs").get("tokens").forEach(t -> tokens.add(t.asString()));
                assertThat(tokens).hasSize(TOKENS);
                reference.add(tokens);
            }
            // the same requests streamed; a decode worker killed once every stream is under way
            List<Seen> seen = new ArrayList<>();
            List<CompletableFuture<Void>> running = new ArrayList<>();
            for (int i = 0; i < STREAMS; i++) {
                Seen s = new Seen();
                seen.add(s);
                running.add(http.sendAsync(post(cluster, body(i, true)), HttpResponse.BodyHandlers.ofLines())
                        .thenAccept(r -> r.body().forEach(line -> read(s, line))));
            }
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (seen.stream().anyMatch(s -> s.chunks.get() < 10) && System.nanoTime() < until) Thread.sleep(20);
            assertThat(seen)
                    .allSatisfy(s -> assertThat(s.finish).as("still streaming").isNull());
            double[] batch = { // the streams each decode worker holds, by its own count
                LocalCluster.metric(cluster.decodeUrl(0), "mooncakej_decode_batch_size"),
                LocalCluster.metric(cluster.decodeUrl(1), "mooncakej_decode_batch_size")
            };
            int victim = batch[0] >= batch[1] ? 0 : 1;
            long moved = (long) batch[victim];
            System.out.println("killing decode worker " + victim + " (" + cluster.decodeUrl(victim) + "), which holds "
                    + moved + " of " + STREAMS + " streams");
            ProcessHandle.allProcesses()
                    .filter(h -> h.info()
                            .commandLine()
                            .orElse("")
                            .contains("--server.port=" + (cluster.port + 20 + victim) + " "))
                    .findFirst()
                    .orElseThrow()
                    .destroyForcibly();
            CompletableFuture.allOf(running.toArray(CompletableFuture[]::new)).get(180, TimeUnit.SECONDS);
            for (int i = 0; i < STREAMS; i++) {
                Seen s = seen.get(i);
                assertThat(s.error).as("stream %d: no error event", i).isNull();
                assertThat(s.tokens)
                        .as("stream %d: the undisturbed run's tokens", i)
                        .isEqualTo(reference.get(i));
                assertThat(s.finish).isEqualTo("length");
                assertThat(s.completionTokens)
                        .as("stream %d: usage counts each token once", i)
                        .isEqualTo(TOKENS);
            }
            assertThat(moved).as("the killed worker held streams").isPositive();
            assertThat(LocalCluster.metric(cluster.url(), "mooncakej_stream_migrations_total"))
                    .as("each of its streams moved")
                    .isGreaterThanOrEqualTo(moved);
            String survivor = cluster.decodeUrl(1 - victim);
            until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (LocalCluster.metric(survivor, "mooncakej_kv_blocks_used") > 0 && System.nanoTime() < until)
                Thread.sleep(50);
            assertThat(LocalCluster.metric(survivor, "mooncakej_kv_blocks_used"))
                    .as("the surviving decode worker holds nothing")
                    .isZero();
        }
    }

    private static HttpRequest post(LocalCluster cluster, String body) {
        return HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                .timeout(Duration.ofSeconds(180))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
    }

    private static void read(Seen s, String line) {
        if (!line.startsWith("data:") || line.contains("[DONE]")) return;
        JsonNode ev = JSON.readTree(line.substring(5).trim());
        if (ev.has("error")) {
            s.error = ev.toString();
            return;
        }
        if (ev.has("usage") && !ev.get("usage").isNull())
            s.completionTokens = ev.get("usage").get("completion_tokens").asInt();
        if (ev.get("choices").isEmpty()) return;
        JsonNode c = ev.get("choices").get(0);
        s.chunks.incrementAndGet();
        s.text.append(c.get("text").asString());
        JsonNode lp = c.get("logprobs");
        if (lp != null && !lp.isNull()) lp.get("tokens").forEach(t -> s.tokens.add(t.asString()));
        if (!c.get("finish_reason").isNull()) s.finish = c.get("finish_reason").asString();
    }
}
