package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Completions run side by side as a client reads them, for issue 28's fault tests: an undisturbed
 * reference run (not streamed), the same requests streamed (each chunk's tokens and arrival time
 * kept), and the check that every stream equals its reference token for token. Even requests are
 * greedy; odd ones are sampled under a seed, with a logit bias that makes fifty tokens as likely as
 * the simulated engine's own pick (its logits are one-hot, so without it sampling would be greedy):
 * a moved stream that drew from anywhere but where its generator stood would differ. Every fourth is
 * decoded under a JSON schema too: a moved one whose constraint started afresh would differ. Every
 * fifth asks for two choices ({@code n=2}): each moves on its own, under its own seed.
 */
final class ReferenceStreams {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final HttpClient http;
    private final LocalCluster cluster;
    private final int count, tokens;
    /** API keys of the reference run and of the streamed one (null: an open endpoint). */
    private final String referenceKey, runKey;

    ReferenceStreams(HttpClient http, LocalCluster cluster, int count, int tokens) {
        this(http, cluster, count, tokens, null, null);
    }

    /**
     * With each run under its own API key: keys with a salt of their own keep the reference run's
     * finished sequences (in the KV pool) out of the streamed run's reach, so what a moved stream
     * finds in the pool is only what its own run put there.
     */
    ReferenceStreams(HttpClient http, LocalCluster cluster, int count, int tokens, String referenceKey, String runKey) {
        this.http = http;
        this.cluster = cluster;
        this.count = count;
        this.tokens = tokens;
        this.referenceKey = referenceKey;
        this.runKey = runKey;
    }

    /**
     * Request {@code i}: a 40-token prompt of its own, exactly {@code tokens} tokens with logprobs;
     * greedy when {@code i} is even, else sampled under seed {@code 1000 + i} among fifty biased tokens;
     * every fourth under a JSON schema (an array of at least 1000 integers: steered towards its
     * shortest closing, so a moved stream goes on only if its constraint stands where it stood); every
     * fifth with two choices.
     */
    String body(int i, boolean stream) {
        List<Integer> prompt = new ArrayList<>();
        for (int k = 0; k < 40; k++) prompt.add(3 + (i * 31 + k * 7) % 200);
        StringBuilder bias = new StringBuilder();
        for (int t = 100; t < 150; t++)
            bias.append(t == 100 ? "" : ",").append("\"").append(t).append("\":20");
        String sampling = i % 2 == 0
                ? "\"temperature\":0"
                : "\"temperature\":1,\"seed\":" + (1000 + i) + ",\"logit_bias\":{" + bias + "}";
        if (i % 4 == 3) // under a schema no answer within max_tokens completes: each token is the constraint's
        sampling += ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"ids\","
                + "\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1000}}}";
        if (choices(i) > 1) sampling += ",\"n\":" + choices(i);
        return "{\"model\":\"mooncakej-tiny\",\"prompt\":" + prompt + ",\"max_tokens\":" + tokens + ","
                + sampling + ",\"ignore_eos\":true,\"logprobs\":1"
                + (stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "") + "}";
    }

    /** How many choices request {@code i} asks for. */
    static int choices(int i) {
        return i % 5 == 4 ? 2 : 1;
    }

    /** The undisturbed run, all requests at once: each one's tokens, choice by choice. */
    List<List<List<String>>> reference() throws Exception {
        List<CompletableFuture<HttpResponse<String>>> refs = new ArrayList<>();
        for (int i = 0; i < count; i++)
            refs.add(http.sendAsync(post(body(i, false), referenceKey), HttpResponse.BodyHandlers.ofString()));
        List<List<List<String>>> reference = new ArrayList<>();
        for (var f : refs) {
            HttpResponse<String> answer = f.get(120, TimeUnit.SECONDS);
            assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
            JsonNode r = JSON.readTree(answer.body());
            List<List<String>> all = new ArrayList<>();
            for (int c = 0; c < choices(reference.size()); c++) {
                List<String> got = new ArrayList<>();
                r.get("choices").get(c).get("logprobs").get("tokens").forEach(t -> got.add(t.asString()));
                assertThat(got).hasSize(tokens);
                all.add(got);
            }
            reference.add(all);
        }
        return reference;
    }

    /**
     * One stream as the client saw it: each choice's tokens and finish reason, when each chunk came,
     * usage, any error event.
     */
    static final class Seen {
        final List<List<String>> tokens = List.of(new CopyOnWriteArrayList<>(), new CopyOnWriteArrayList<>());
        final String[] finish = new String[2];
        final List<Long> chunkNanos = new CopyOnWriteArrayList<>();
        final AtomicInteger chunks = new AtomicInteger();
        volatile String error;
        volatile int completionTokens = -1;

        boolean ended() {
            return finish[0] != null || finish[1] != null;
        }

        /** The longest wait between two chunks of this stream. */
        long longestGapMillis() {
            long most = 0;
            for (int i = 1; i < chunkNanos.size(); i++)
                most = Math.max(most, chunkNanos.get(i) - chunkNanos.get(i - 1));
            return most / 1_000_000;
        }
    }

    /** The streamed run, started; {@link #await} waits for it. */
    final class Run {
        final List<Seen> seen = new ArrayList<>();
        final List<CompletableFuture<Void>> running = new ArrayList<>();

        /** Waits until every stream has had {@code chunks} chunks (none has ended by then). */
        void underWay(int chunks) throws InterruptedException {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (seen.stream().anyMatch(s -> s.chunks.get() < chunks) && System.nanoTime() < until) Thread.sleep(20);
            assertThat(seen)
                    .allSatisfy(s -> assertThat(s.ended()).as("still streaming").isFalse());
        }

        /** Waits for every stream to end, then checks each against its reference, token for token. */
        void await(List<List<List<String>>> reference) throws Exception {
            CompletableFuture.allOf(running.toArray(CompletableFuture[]::new)).get(180, TimeUnit.SECONDS);
            for (int i = 0; i < count; i++) {
                Seen s = seen.get(i);
                assertThat(s.error).as("stream %d: no error event", i).isNull();
                for (int c = 0; c < choices(i); c++) {
                    assertThat(s.tokens.get(c))
                            .as("stream %d, choice %d: the undisturbed run's tokens", i, c)
                            .isEqualTo(reference.get(i).get(c));
                    assertThat(s.finish[c]).as("stream %d, choice %d", i, c).isEqualTo("length");
                }
                assertThat(s.completionTokens)
                        .as("stream %d: usage counts each token once", i)
                        .isEqualTo(tokens * choices(i));
            }
        }

        /** The longest wait between two chunks of any stream (ms). */
        long longestGapMillis() {
            return seen.stream().mapToLong(Seen::longestGapMillis).max().orElse(0);
        }
    }

    /** Starts every request streamed. */
    Run stream() {
        Run run = new Run();
        for (int i = 0; i < count; i++) {
            Seen s = new Seen();
            run.seen.add(s);
            run.running.add(http.sendAsync(post(body(i, true), runKey), HttpResponse.BodyHandlers.ofLines())
                    .thenAccept(r -> r.body().forEach(line -> read(s, line))));
        }
        return run;
    }

    /** Which decode worker holds the most streams now, by its own count ({@code mooncakej_decode_batch_size}). */
    int busiestDecode(int decodeWorkers) throws Exception {
        int busiest = 0;
        double most = -1;
        for (int i = 0; i < decodeWorkers; i++) {
            double batch = LocalCluster.metric(cluster.decodeUrl(i), "mooncakej_decode_batch_size");
            if (batch > most) {
                most = batch;
                busiest = i;
            }
        }
        return busiest;
    }

    /** The worker process (its JVM) serving HTTP on {@code port}. */
    static ProcessHandle worker(int port) {
        String flag = "--server.port=" + port + " ";
        return ProcessHandle.allProcesses()
                .filter(h -> (h.info().commandLine().orElse("") + " ").contains(flag))
                .filter(h -> h.info().commandLine().orElse("").contains(".jar"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no process serves port " + port));
    }

    private HttpRequest post(String body, String key) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                .timeout(Duration.ofSeconds(180))
                .header("Content-Type", "application/json");
        if (key != null) b.header("Authorization", "Bearer " + key);
        return b.POST(HttpRequest.BodyPublishers.ofString(body)).build();
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
        int index = c.path("index").asInt(0);
        s.chunks.incrementAndGet();
        s.chunkNanos.add(System.nanoTime());
        JsonNode lp = c.get("logprobs");
        if (lp != null && !lp.isNull())
            lp.get("tokens").forEach(t -> s.tokens.get(index).add(t.asString()));
        if (!c.get("finish_reason").isNull())
            s.finish[index] = c.get("finish_reason").asString();
    }
}
