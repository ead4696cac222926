package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The conductor's guards under abuse (issue 23, items 2 and 3), on {@code ./mooncakej up} with API
 * keys and a 6 s request timeout: slow clients hold neither the service nor its memory, and one key
 * flooding the endpoint with huge prompts starves no other key and leaks no slot.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class GuardsSystemTest {
    private static final HttpClient HTTP = LeakCheckingClient.wrap(
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build());
    private static final String FLOOD = "sk-flood-" + Long.toHexString(new Random().nextLong());
    private static final String NORMAL = "sk-normal-" + Long.toHexString(new Random().nextLong());
    private static final String SLOW = "sk-slow-" + Long.toHexString(new Random().nextLong());
    private static LocalCluster cluster;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-guards");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        Path keys = Files.writeString(
                dir.resolve("api-keys"),
                FLOOD + " flood max-concurrent=4 requests-per-minute=40\n" + NORMAL + " normal\n" + SLOW
                        + " slow max-concurrent=300 requests-per-minute=1000\n");
        cluster = LocalCluster.start(
                model,
                1,
                1,
                Map.of("MOONCAKEJ_EDGE_REQUESTTIMEOUT", "6s"),
                "--api-keys",
                keys.toString(),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.01");
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    /** The last normal request's answer (for a failure's message). */
    private static volatile String lastNormal = "";

    /** A normal request of the normal key: its status and how long it took. */
    private static long[] normalRequest() throws Exception {
        long t0 = System.nanoTime();
        HttpResponse<String> r = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                        .timeout(Duration.ofSeconds(30))
                        .header("Content-Type", "application/json")
                        .header("Authorization", "Bearer " + NORMAL)
                        .POST(HttpRequest.BodyPublishers.ofString(
                                "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hello there\",\"max_tokens\":4}"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        lastNormal = r.statusCode() + " " + r.body();
        return new long[] {r.statusCode(), (System.nanoTime() - t0) / 1_000_000};
    }

    /** Sum of a metric's series (with a label filter) in a Prometheus page. */
    private static double metric(String page, String name, String filter) {
        double sum = 0;
        for (String line : page.split("\n"))
            if ((line.startsWith(name + "{") || line.startsWith(name + " ")) && line.contains(filter))
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        return sum;
    }

    private static double concurrent(String key) throws Exception {
        String page = LocalCluster.get(cluster.url() + "/internal/api-keys/metrics");
        Matcher m = Pattern.compile("mooncakej_api_key_concurrent\\{key=\"" + key + "\"} ([0-9.]+)")
                .matcher(page);
        assertThat(m.find()).as("the concurrency gauge of %s in %s", key, page).isTrue();
        return Double.parseDouble(m.group(1));
    }

    private static void awaitConcurrent(String key, double expected, int seconds) throws Exception {
        long until = System.nanoTime() + seconds * 1_000_000_000L;
        while (concurrent(key) != expected && System.nanoTime() < until) Thread.sleep(100);
        assertThat(concurrent(key))
                .as("requests of key %s admitted and not ended", key)
                .isEqualTo(expected);
    }

    /** Opens a POST with a declared body of {@code length} bytes and sends its headers only. */
    private static Socket openPost(String key, long length) throws Exception {
        URI u = URI.create(cluster.url());
        Socket s = new Socket();
        s.connect(new InetSocketAddress(u.getHost(), u.getPort()), 3000);
        s.setSoTimeout(30_000);
        String head = "POST /v1/completions HTTP/1.1\r\nHost: " + u.getHost() + "\r\n"
                + (key == null ? "" : "Authorization: Bearer " + key + "\r\n")
                + "Content-Type: application/json\r\nContent-Length: " + length + "\r\n\r\n";
        s.getOutputStream().write(head.getBytes(StandardCharsets.ISO_8859_1));
        s.getOutputStream().flush();
        return s;
    }

    @Test
    void slowClientsHoldNeitherTheServiceNorItsMemory() throws Exception {
        List<Socket> keyless = new ArrayList<>(), keyed = new ArrayList<>();
        try {
            for (int i = 0; i < 100; i++) keyless.add(openPost(null, 4_000_000));
            for (int i = 0; i < 100; i++) keyed.add(openPost(SLOW, 4_000_000));
            for (Socket s : keyless)
                assertThat(RawHttp.statusOf(s.getInputStream()))
                        .as("a client without a key, answered from its headers")
                        .isEqualTo(401);
            awaitConcurrent("slow", 100, 10);
            // one byte a second on every keyed connection, while a normal client is served
            long started = System.nanoTime();
            List<Long> normal = new ArrayList<>();
            for (int second = 0; second < 4; second++) {
                for (Socket s : keyed) {
                    OutputStream out = s.getOutputStream();
                    out.write('{');
                    out.flush();
                }
                long[] r = normalRequest();
                assertThat(r[0])
                        .as("a normal client's request among 200 slow ones")
                        .isEqualTo(200);
                normal.add(r[1]);
                Thread.sleep(1000);
            }
            assertThat(normal)
                    .as("normal requests (ms) while 100 slow clients trickle 4 MB bodies")
                    .allSatisfy(ms -> assertThat(ms).isLessThan(2000));
            String page = LocalCluster.get(cluster.url() + "/actuator/prometheus");
            double heap = metric(page, "jvm_memory_used_bytes", "area=\"heap\"");
            assertThat(heap)
                    .as("the conductor's heap in use (bytes)")
                    .isPositive()
                    .isLessThan(400e6);
            assertThat(metric(page, "mooncakej_edge_connections_open", ""))
                    .as("open connections counted")
                    .isGreaterThanOrEqualTo(100);
            // the request timeout (6 s here) ends every slow request, and its slot with it
            for (Socket s : keyed) {
                int status = RawHttp.statusOf(s.getInputStream());
                assertThat(status).as("a slow client's answer").isIn(408, 400, 413, -1);
            }
            assertThat((System.nanoTime() - started) / 1e9)
                    .as("seconds until every slow request was ended")
                    .isLessThan(30);
            awaitConcurrent("slow", 0, 10);
        } finally {
            for (Socket s : keyless) s.close();
            for (Socket s : keyed) s.close();
        }
        assertThat(normalRequest()[0]).isEqualTo(200);
    }

    @Test
    void aFloodingKeyStarvesNoOtherKeyAndLeaksNoSlot() throws Exception {
        // clients of the flooding key that vanish mid-admission (part of the body sent) hold nothing
        List<Socket> vanishing = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            Socket s = openPost(FLOOD, 3_000_000);
            s.getOutputStream()
                    .write(("{\"model\":\"mooncakej-tiny\",\"prompt\":\"" + "x".repeat(500_000))
                            .getBytes(StandardCharsets.UTF_8));
            s.getOutputStream().flush();
            vanishing.add(s);
        }
        awaitConcurrent("flood", 4, 10);
        for (Socket s : vanishing) {
            s.setSoLinger(true, 0); // reset: gone at once
            s.close();
        }
        awaitConcurrent("flood", 0, 10);

        // then 16 threads of it send 3 MB over-context prompts as fast as they are answered
        String huge = "{\"model\":\"mooncakej-tiny\",\"prompt\":\"" + "x ".repeat(1_500_000) + "\",\"max_tokens\":1}";
        Map<Integer, AtomicInteger> statuses = new ConcurrentHashMap<>();
        long until = System.nanoTime() + 8_000_000_000L;
        List<Thread> flood = new ArrayList<>();
        for (int t = 0; t < 16; t++)
            flood.add(Thread.ofPlatform().start(() -> {
                while (System.nanoTime() < until) {
                    try {
                        int st = HTTP.send(
                                        HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                                                .timeout(Duration.ofSeconds(30))
                                                .header("Content-Type", "application/json")
                                                .header("Authorization", "Bearer " + FLOOD)
                                                .POST(HttpRequest.BodyPublishers.ofString(huge))
                                                .build(),
                                        HttpResponse.BodyHandlers.ofString())
                                .statusCode();
                        statuses.computeIfAbsent(st, k -> new AtomicInteger()).incrementAndGet();
                    } catch (Exception e) {
                        statuses.computeIfAbsent(-1, k -> new AtomicInteger()).incrementAndGet();
                    }
                }
            }));
        List<Long> normal = new ArrayList<>();
        while (System.nanoTime() < until) {
            long[] r = normalRequest();
            assertThat(r[0])
                    .as("the other key's request during the flood: %s", lastNormal)
                    .isEqualTo(200);
            normal.add(r[1]);
            Thread.sleep(200);
        }
        for (Thread t : flood) t.join(60_000);
        assertThat(normal)
                .as("the other key's requests (ms)")
                .isNotEmpty()
                .allSatisfy(ms -> assertThat(ms).isLessThan(5000));
        assertThat(statuses)
                .as("the flooding key's answers by status")
                .containsKey(429)
                .containsKey(400);
        assertThat(statuses.get(400).get())
                .as("requests of the flooding key that reached the parser (each counted against its 40 a minute)")
                .isLessThanOrEqualTo(40);
        assertThat(statuses).as("no failure but the key's own").doesNotContainKeys(500, 503, -1);
        awaitConcurrent("flood", 0, 10);
    }
}
