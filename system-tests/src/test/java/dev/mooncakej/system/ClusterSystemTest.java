package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import dev.mooncakej.kvtransfer.engine.EtcdProcess;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The cluster profile as real processes: a real etcd (Debian's etcd-server), two conductors (leader
 * and standby, elected through etcd), two prefill and two decode workers registered under 3 s leases.
 * Requests succeed; killing a decode worker mid-stream fails no stream (the ones it was serving move
 * to the other decode worker), and it leaves scheduling when its lease ends; a worker that joins gets
 * traffic; killing the leader conductor moves leadership, and the new leader serves within the stated bound with its
 * prefix index rebuilt from the workers (a repeated prompt reports cached tokens); etcd stopped and
 * restarted loses no running request and membership recovers.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class ClusterSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = LeakCheckingClient.wrap(
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build());
    private static final int TTL = 3;
    /**
     * docs/operations.md: a failover takes at most the lease TTL plus the rebuild (pulling every prefill worker's
     * index).
     */
    private static final double FAILOVER_BOUND_SECONDS = TTL + 5;

    private Path dir;
    private EtcdProcess etcd;
    private Path model;

    private String[] clusterArgs() {
        return new String[] {
            "--mooncakej.cluster.etcd-endpoints=" + etcd.url(),
            "--mooncakej.cluster.lease-ttl-seconds=" + TTL,
            "--mooncakej.cluster.advertise-host=127.0.0.1"
        };
    }

    private ClusterProcess conductor(String name) throws Exception {
        List<String> a = new ArrayList<>(List.of(clusterArgs()));
        a.add("--mooncakej.conductor.model=" + model);
        return ClusterProcess.start(
                name, "conductor/target/mooncakej-conductor-exec.jar", dir, a.toArray(String[]::new));
    }

    private ClusterProcess worker(String role, String name) throws Exception {
        List<String> a = new ArrayList<>(List.of(clusterArgs()));
        a.add("--mooncakej." + role + ".model=" + model);
        a.add("--mooncakej." + role + ".threads=1");
        return ClusterProcess.start(
                name, role + "-worker/target/mooncakej-" + role + "-worker.jar", dir, a.toArray(String[]::new));
    }

    private static JsonNode leaderInfo(ClusterProcess c) {
        try {
            return JSON.readTree(HTTP.send(
                            ClusterProcess.request(c.url() + "/internal/leader")
                                    .timeout(Duration.ofSeconds(3))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString())
                    .body());
        } catch (Exception e) {
            return JSON.createObjectNode();
        }
    }

    private static void await(BooleanSupplier ok, int seconds, String what, ClusterProcess... logs) throws Exception {
        long until = System.nanoTime() + seconds * 1_000_000_000L;
        while (!ok.getAsBoolean()) {
            if (System.nanoTime() > until) {
                StringBuilder sb = new StringBuilder("timed out after " + seconds + " s waiting for " + what);
                for (ClusterProcess p : logs) {
                    String t = p.logText();
                    sb.append("\n--- ")
                            .append(p.name)
                            .append(" ---\n")
                            .append(t.substring(Math.max(0, t.length() - 3000)));
                }
                throw new AssertionError(sb.toString());
            }
            Thread.sleep(100);
        }
    }

    private static HttpResponse<String> complete(ClusterProcess c, String prompt, int maxTokens) throws Exception {
        String body = JSON.writeValueAsString(
                Map.of("model", "mooncakej-small", "prompt", prompt, "max_tokens", maxTokens, "temperature", 0));
        return HTTP.send(
                HttpRequest.newBuilder(URI.create(c.url() + "/v1/completions"))
                        .timeout(Duration.ofSeconds(120))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** A streamed completion read line by line: its request id, tokens seen, and how it ended. */
    static final class Stream {
        volatile String requestId;
        final AtomicInteger chunks = new AtomicInteger();
        volatile boolean error, finished, done;
        final CompletableFuture<Void> ended = new CompletableFuture<>();
    }

    private static Stream stream(ClusterProcess c, String prompt, int maxTokens) {
        Stream s = new Stream();
        Thread.ofVirtual().start(() -> {
            try {
                String body = JSON.writeValueAsString(Map.of(
                        "model",
                        "mooncakej-small",
                        "prompt",
                        prompt,
                        "max_tokens",
                        maxTokens,
                        "temperature",
                        0,
                        "stream",
                        true));
                HttpResponse<InputStream> r = HTTP.send(
                        HttpRequest.newBuilder(URI.create(c.url() + "/v1/completions"))
                                .timeout(Duration.ofSeconds(120))
                                .header("Content-Type", "application/json")
                                .POST(HttpRequest.BodyPublishers.ofString(body))
                                .build(),
                        HttpResponse.BodyHandlers.ofInputStream());
                s.requestId = r.headers().firstValue("X-Request-Id").orElse("?");
                try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (!line.startsWith("data:")) continue;
                        String data = line.substring(5).trim();
                        if (data.equals("[DONE]")) s.done = true;
                        else if (data.contains("\"error\"")) s.error = true;
                        else {
                            s.chunks.incrementAndGet();
                            if (data.contains("\"finish_reason\":\"")) s.finished = true;
                        }
                    }
                }
            } catch (Exception e) {
                s.error = true;
            }
            s.ended.complete(null);
        });
        return s;
    }

    /** The block keys a prefill worker's cache holds (what it reports to the store master). */
    private static long[] kvIndex(ClusterProcess prefill) throws Exception {
        String body = HTTP.send(
                        ClusterProcess.request(prefill.url() + "/internal/kv-index")
                                .timeout(Duration.ofSeconds(5))
                                .build(),
                        HttpResponse.BodyHandlers.ofString())
                .body();
        return InternalJson.decode(body, WorkerMessages.KvIndex.class).blockKeys();
    }

    /** Whether the conductor's store master lists a replica of every key in that worker's segment. */
    private static boolean indexed(ClusterProcess conductor, ClusterProcess prefill, long[] keys) {
        if (keys.length == 0) return true;
        try {
            String segment = JSON.readTree(HTTP.send(
                                    ClusterProcess.request(prefill.url() + "/internal/kv-index")
                                            .timeout(Duration.ofSeconds(5))
                                            .build(),
                                    HttpResponse.BodyHandlers.ofString())
                            .body())
                    .path("worker")
                    .asString();
            HttpResponse<String> r = HTTP.send(
                    ClusterProcess.request(conductor.url() + "/internal/store/get")
                            .timeout(Duration.ofSeconds(5))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(
                                    InternalJson.encode(new WorkerMessages.StoreGet(keys))))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) return false;
            var got = InternalJson.decode(r.body(), WorkerMessages.StoreReplicas.class);
            return got.replicas().stream()
                    .allMatch(rs -> rs.stream().anyMatch(x -> x.segment().equals(segment)));
        } catch (Exception e) {
            return false;
        }
    }

    private static long count(ClusterProcess decode, List<Stream> streams) {
        String log = decode.logText();
        return streams.stream()
                .filter(s -> s.requestId != null && log.contains(s.requestId))
                .count();
    }

    @Test
    void membershipFailoverAndEtcdOutage() throws Exception {
        dir = Files.createTempDirectory("mooncakej-cluster");
        model = LocalCluster.projectRoot().resolve(".cache/models/mooncakej-small.gguf");
        if (!Files.exists(model)) {
            Files.createDirectories(model.getParent());
            ModelGenerator.generate(ModelGenerator.Preset.SMALL, model);
        }
        etcd = new EtcdProcess();
        List<ClusterProcess> all = new ArrayList<>();
        try {
            ClusterProcess a = conductor("conductor-a");
            all.add(a);
            ClusterProcess p0 = worker("prefill", "prefill-0"), p1 = worker("prefill", "prefill-1");
            ClusterProcess d0 = worker("decode", "decode-0");
            final ClusterProcess d1 = worker("decode", "decode-1");
            all.addAll(List.of(p0, p1, d0, d1));
            await(
                    () -> leaderInfo(a).path("leader").asBoolean()
                            && leaderInfo(a).path("prefill").size() == 2
                            && leaderInfo(a).path("decode").size() == 2,
                    240,
                    "conductor A leading with 2 prefill and 2 decode workers",
                    a,
                    p0,
                    d0);

            // 1. requests succeed
            for (int i = 0; i < 4; i++) {
                HttpResponse<String> r = complete(a, "Hello cluster " + i, 8);
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            }

            // 2. kill a decode worker mid-stream: its streams move to the other, none fails
            List<Stream> streams = new ArrayList<>();
            for (int i = 0; i < 6; i++) streams.add(stream(a, "Stream number " + i + " tells a long story", 400));
            await(
                    () -> streams.stream().allMatch(s -> s.chunks.get() >= 3 || s.ended.isDone()),
                    60,
                    "streams under way",
                    a);
            assertThat(streams.stream().filter(s -> s.ended.isDone()).count())
                    .as("streams still running when the worker is killed")
                    .isLessThan(6);
            // kill the decode worker serving the most of these streams
            ClusterProcess victim = count(d0, streams) >= count(d1, streams) ? d0 : d1;
            ClusterProcess survivor = victim == d0 ? d1 : d0;
            String victimLog = victim.logText();
            long killedAt = System.nanoTime();
            victim.kill();
            // when the killed worker leaves scheduling, seen by a poller of its own (the streams below take their time)
            CompletableFuture<Long> leftAt = CompletableFuture.supplyAsync(() -> {
                long deadline = killedAt + TimeUnit.SECONDS.toNanos(TTL + 30);
                while (System.nanoTime() < deadline) {
                    try {
                        if (leaderInfo(a).path("decode").size() == 1) return System.nanoTime();
                        Thread.sleep(100);
                    } catch (Exception e) {
                        // the leader is busy: poll again
                    }
                }
                return deadline;
            });
            for (Stream s : streams) s.ended.get(90, TimeUnit.SECONDS);
            int onD0 = 0;
            for (Stream s : streams) {
                String state = "stream " + s.requestId + ": " + s.chunks.get() + " chunks, error " + s.error
                        + ", finished " + s.finished + ", [DONE] " + s.done;
                if (s.requestId != null && victimLog.contains(s.requestId)) {
                    onD0++;
                    assertThat(s.error)
                            .as("on the killed worker: moved to the survivor, no error event: %s", state)
                            .isFalse();
                    assertThat(s.finished)
                            .as("on the killed worker, finished: %s", state)
                            .isTrue();
                } else {
                    assertThat(s.error).as("on the surviving worker: %s", state).isFalse();
                    assertThat(s.finished)
                            .as("on the surviving worker: %s", state)
                            .isTrue();
                }
            }
            assertThat(onD0).as("some streams were on the killed worker").isPositive();
            assertThat(streams.stream().filter(s -> s.error).count())
                    .as("streams failed by the kill (their streams moved to the surviving worker)")
                    .isZero();
            await(
                    () -> leaderInfo(a).path("decode").size() == 1,
                    TTL + 5,
                    "the killed worker leaving scheduling within its lease TTL",
                    a);
            double gone = (leftAt.get(TTL + 30, TimeUnit.SECONDS) - killedAt) / 1e9;
            System.out.printf("killed decode worker left scheduling after %.1f s (TTL %d s)%n", gone, TTL);
            assertThat(gone).isLessThan(TTL + 5);

            // 3. a new worker registers and receives traffic
            ClusterProcess d2 = worker("decode", "decode-2");
            all.add(d2);
            await(() -> leaderInfo(a).path("decode").size() == 2, 90, "decode-2 joining", a, d2);
            for (int i = 0; i < 8; i++) complete(a, "New worker round b" + i, 4);
            assertThat(d2.logText()).as("decode-2 served requests").containsPattern("\\[[0-9a-f-]{36}\\]");

            // 4. a standby conductor; the leader dies; the standby takes over with the prefix index rebuilt
            ClusterProcess b = conductor("conductor-b");
            all.add(b);
            await(() -> b.logText().contains("campaigning for leadership"), 90, "conductor B standing by", b);
            HttpResponse<String> standby = complete(b, "hello", 4);
            assertThat(standby.statusCode()).isEqualTo(503);
            assertThat(standby.body()).contains("standby");
            StringBuilder longPrompt = new StringBuilder();
            Random rnd = new Random(3);
            while (longPrompt.length() < 1200)
                longPrompt.append("w").append(rnd.nextInt(900)).append(' ');
            String first = complete(a, longPrompt.toString(), 4).body();
            assertThat(JSON.readTree(first).path("usage").path("prompt_tokens").asInt())
                    .as("prompt tokens of the long prompt's answer: %s", first)
                    .isGreaterThan(64);
            Thread.sleep(2 * 200 + 300); // the prefill worker's pushed events reach the leader (pushed every 200 ms)
            long t0 = System.nanoTime();
            a.kill();
            await(
                    () -> leaderInfo(b).path("leader").asBoolean(),
                    (int) FAILOVER_BOUND_SECONDS + 5,
                    "conductor B elected",
                    b);
            // the new leader's store index is what the workers hold (rebuilt from their full reports, not
            // inherited: a new master starts empty), block for block and worker for worker
            long[] heldBy0 = kvIndex(p0), heldBy1 = kvIndex(p1);
            assertThat(heldBy0.length + heldBy1.length)
                    .as("blocks the prefill workers hold")
                    .isGreaterThan(2);
            await(
                    () -> indexed(b, p0, heldBy0) && indexed(b, p1, heldBy1),
                    10,
                    "conductor B's store index to hold every block the workers hold",
                    b);
            HttpResponse<String> again = complete(b, longPrompt.toString(), 4);
            double failover = (System.nanoTime() - t0) / 1e9;
            System.out.printf(
                    "failover: conductor B served %.2f s after the leader was killed (bound %.0f s)%n",
                    failover, FAILOVER_BOUND_SECONDS);
            assertThat(again.statusCode()).as(again.body()).isEqualTo(200);
            assertThat(failover).isLessThan(FAILOVER_BOUND_SECONDS);
            int cached = JSON.readTree(again.body())
                    .path("usage")
                    .path("prompt_tokens_details")
                    .path("cached_tokens")
                    .asInt();
            assertThat(cached)
                    .as("the repeated prompt's cached tokens on the new leader")
                    .isPositive();

            // 5. etcd away for a few seconds: the running stream completes, membership recovers
            Stream during = stream(b, "A stream across an etcd outage", 200);
            await(() -> during.chunks.get() >= 2 || during.ended.isDone(), 60, "a stream under way", b);
            etcd.stop();
            Thread.sleep(TTL * 1000L + 1000);
            etcd = etcd.restart();
            during.ended.get(90, TimeUnit.SECONDS);
            assertThat(during.error).as("a request running across the outage").isFalse();
            assertThat(during.finished).isTrue();
            await(
                    () -> leaderInfo(b).path("leader").asBoolean()
                            && leaderInfo(b).path("prefill").size() == 2
                            && leaderInfo(b).path("decode").size() == 2,
                    30,
                    "membership after etcd returned",
                    b);
            assertThat(complete(b, "after the outage", 4).statusCode()).isEqualTo(200);
        } finally {
            for (ClusterProcess p : all) p.close();
            etcd.close();
        }
    }
}
