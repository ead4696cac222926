package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code ./mooncakej up --engine simulated --prefill 2 --decode 2} as real processes: the simulated
 * engine (LLaMA3-70B-on-8xA800 timing, time-scaled) behind the same serving path, driven by the
 * official OpenAI SDK; the prefill worker refusing KV targets that do not come from its trusted
 * metadata; and decode pools small enough that reservations sized for the whole generation matter.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SimulatedClusterSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String MODEL = "mooncakej-tiny";
    /** KV blocks of 32 tokens per decode worker: three 1,020-token generations fit in one, not four. */
    private static final int DECODE_BLOCKS = 100;
    /** mooncakej.decode.kv-wait-millis: a reservation that has not started decoding by then is dropped. */
    private static final long KV_WAIT_MILLIS = 4000;

    private static Path dir;
    private static LocalCluster cluster;
    private static OpenAIClient openai;

    @BeforeAll
    static void up() throws Exception {
        dir = Files.createTempDirectory("mooncakej-sim");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(
                model,
                2,
                2,
                Map.of(
                        "MOONCAKEJ_DECODE_KVBLOCKS",
                        String.valueOf(DECODE_BLOCKS),
                        "MOONCAKEJ_DECODE_KVWAITMILLIS",
                        String.valueOf(KV_WAIT_MILLIS)),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.4");
        openai = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("not-needed")
                .timeout(Duration.ofSeconds(60))
                .build();
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    @Test
    @Order(1)
    void aSimulatedClusterServesChatAndCompletionsStreamingAndNot() throws Exception {
        assertThat(cluster.log("prefill-0")).contains("SimulatedEngine engine");
        assertThat(cluster.log("decode-1")).contains("SimulatedEngine engine");
        for (int i = 0; i < 4; i++) { // enough requests that both decode workers take some
            ChatCompletion chat = openai.chat()
                    .completions()
                    .create(ChatCompletionCreateParams.builder()
                            .model(MODEL)
                            .addUserMessage("Hello there " + i)
                            .maxCompletionTokens(8)
                            .temperature(0.0)
                            .build());
            assertThat(chat.choices().get(0).finishReason().asString()).isIn("length", "stop");
            assertThat(chat.usage().orElseThrow().completionTokens()).isBetween(1L, 8L);
            StringBuilder streamed = new StringBuilder();
            try (StreamResponse<ChatCompletionChunk> s = openai.chat()
                    .completions()
                    .createStreaming(ChatCompletionCreateParams.builder()
                            .model(MODEL)
                            .addUserMessage("Hello there " + i)
                            .maxCompletionTokens(8)
                            .temperature(0.0)
                            .build())) {
                s.stream()
                        .forEach(c ->
                                c.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append)));
            }
            assertThat(streamed.toString())
                    .as("the simulated engine is deterministic: streamed = not streamed")
                    .isEqualTo(chat.choices().get(0).message().content().orElseThrow());
        }
        Completion comp = openai.completions()
                .create(CompletionCreateParams.builder()
                        .model(MODEL)
                        .prompt("The quick brown fox")
                        .maxTokens(6)
                        .temperature(0.0)
                        .build());
        StringBuilder compStreamed = new StringBuilder();
        try (StreamResponse<Completion> s = openai.completions()
                .createStreaming(CompletionCreateParams.builder()
                        .model(MODEL)
                        .prompt("The quick brown fox")
                        .maxTokens(6)
                        .temperature(0.0)
                        .build())) {
            s.stream().forEach(c -> c.choices().forEach(ch -> compStreamed.append(ch.text())));
        }
        assertThat(compStreamed.toString()).isEqualTo(comp.choices().get(0).text());
        assertThat(comp.usage().orElseThrow().completionTokens()).isEqualTo(6);
        for (String p : List.of("decode-0", "decode-1"))
            assertThat(cluster.log(p)).as("%s took requests", p).contains("decoding reservation");
    }

    @Test
    @Order(2)
    void aPrefillTaskWhoseTargetNamesAFileOutsideTheShmDirectoryOrALinkIsRefusedAndTheFileIsUntouched()
            throws Exception {
        Path victim = Files.writeString(dir.resolve("victim.bin"), "precious ".repeat(20_000));
        byte[] before = Files.readAllBytes(victim);
        String prefill = cluster.prefillUrl(0) + "/internal/prefill";
        String tag = "evil" + ProcessHandle.current().pid();
        Path shm = Path.of("/dev/shm");
        // a real decode worker's published descriptor, as an attacker on the host could copy it
        Path published;
        try (var files = Files.list(shm)) {
            published = files.filter(f -> f.getFileName().toString().matches("mooncakej-decode-.*\\.json"))
                    .findFirst()
                    .orElseThrow();
        }
        JsonNode entry = JSON.readTree(Files.readString(published));
        List<Path> planted = new ArrayList<>();
        try {
            // 1. the old way: a descriptor in the task body naming the victim file
            String withDescriptor = task(
                    "decode-x",
                    "\"descriptor\":"
                            + JSON.writeValueAsString("{\"name\":\"decode-x\",\"shmFile\":\"" + victim + "\"}") + ",");
            HttpResponse<String> r1 = LocalCluster.post(prefill, withDescriptor);
            assertThat(r1.statusCode()).isEqualTo(400);
            assertThat(r1.body()).contains("unknown field 'descriptor'");
            // 2. a segment name that is a path
            HttpResponse<String> r2 = LocalCluster.post(prefill, task("../../.." + victim, ""));
            assertThat(r2.statusCode()).isEqualTo(400);
            assertThat(r2.body()).contains("kv.segment");
            // 3. a registry entry inside the shm directory whose segment file is a link to the victim
            Path link = shm.resolve("mooncakej-" + tag + "a.seg");
            Files.createSymbolicLink(link, victim);
            planted.add(link);
            planted.add(plant(shm, tag + "a", entry, link.toString()));
            HttpResponse<String> r3 = LocalCluster.post(prefill, task(tag + "a", ""));
            assertThat(r3.statusCode()).as(r3.body()).isNotEqualTo(200);
            // 4. a registry entry naming the victim as its segment file
            planted.add(plant(shm, tag + "b", entry, victim.toString()));
            HttpResponse<String> r4 = LocalCluster.post(prefill, task(tag + "b", ""));
            assertThat(r4.statusCode()).as(r4.body()).isEqualTo(503);
            assertThat(r4.body()).contains("not published");
            // 5. a registry entry that is itself a link to a descriptor elsewhere
            Path elsewhere = plant(
                    dir,
                    tag + "c",
                    entry,
                    shm.resolve("mooncakej-" + tag + "c.seg").toString());
            Path linkedEntry = shm.resolve("mooncakej-" + tag + "c.json");
            Files.createSymbolicLink(linkedEntry, elsewhere);
            planted.add(linkedEntry);
            HttpResponse<String> r5 = LocalCluster.post(prefill, task(tag + "c", ""));
            assertThat(r5.statusCode()).as(r5.body()).isEqualTo(503);
        } finally {
            for (Path p : planted) Files.deleteIfExists(p);
        }
        assertThat(Files.readAllBytes(victim)).as("the victim file").isEqualTo(before);
        Completion ok = openai.completions()
                .create(CompletionCreateParams.builder()
                        .model(MODEL)
                        .prompt("still serving")
                        .maxTokens(3)
                        .temperature(0.0)
                        .build());
        assertThat(ok.usage().orElseThrow().completionTokens()).isEqualTo(3);
    }

    /** A registry entry for segment {@code name}: a copy of a real one, its segment file and port changed. */
    private static Path plant(Path where, String name, JsonNode entry, String shmFile) throws Exception {
        ObjectNode e = (ObjectNode) entry.deepCopy();
        e.put("pid", ProcessHandle.current().pid());
        ObjectNode d = (ObjectNode) e.get("descriptor");
        d.put("name", name);
        d.put("shmFile", shmFile);
        try (ServerSocket s = new ServerSocket(0)) {
            d.put("rpcPort", s.getLocalPort()); // closed once this returns: nothing answers there
        }
        Path f = where.resolve("mooncakej-" + name + ".json");
        Files.writeString(f, JSON.writeValueAsString(e));
        return f;
    }

    /** A prefill task; its layout: 32-token blocks of 16 bytes per token per layer (the simulated engine's). */
    private static String task(String segment, String extra) {
        return "{\"reservationId\":77,\"tokens\":[1,2,3,4,5,6,7,8,9,10],\"blockKeys\":[],\"poolPrefixBlocks\":0,\"k"
                + "v\":{\"segment\":"
                + JSON.writeValueAsString(segment) + "," + extra
                + "\"blockOffsets\":[0],\"layerBytes\":512},\"sampling\":{\"temperature\":0,\"topP\":1,\"topK\":0"
                + ",\"seed\":null,\"logprobs\":false}}";
    }

    @Test
    @Order(3)
    void generationsThatRunToTheirMaxTokensCompleteWhileTheDecodePoolsAreOtherwiseFull() throws Exception {
        int maxTokens = 1000, clients = 8; // 20 + 1000 tokens = 32 blocks each: 3 fit per decode worker, 6 in all
        List<CompletableFuture<HttpResponse<String>>> results = new ArrayList<>();
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < clients; i++) {
                String body = JSON.writeValueAsString(Map.of(
                        "model", MODEL, "prompt", "long story number " + i, "max_tokens", maxTokens, "temperature", 0));
                results.add(CompletableFuture.supplyAsync(
                        () -> {
                            try {
                                return LocalCluster.post(cluster.url() + "/v1/completions", body);
                            } catch (Exception e) {
                                throw new IllegalStateException(e);
                            }
                        },
                        pool));
            }
        }
        int completed = 0, refused = 0;
        for (var f : results) {
            HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
            if (r.statusCode() == 429) {
                refused++;
                assertThat(r.headers().firstValue("Retry-After")).isPresent();
                continue;
            }
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode c = JSON.readTree(r.body());
            assertThat(c.get("choices").get(0).get("finish_reason").asString())
                    .as("no KV cache full midway")
                    .isEqualTo("length");
            assertThat(c.get("usage").get("completion_tokens").asInt()).isEqualTo(maxTokens);
            completed++;
        }
        assertThat(completed).as("as many as the pools hold whole").isGreaterThanOrEqualTo(2 * (DECODE_BLOCKS / 32));
        assertThat(completed + refused).isEqualTo(clients);
        for (int d = 0; d < 2; d++) {
            String url = cluster.decodeUrl(d) + "/internal/status";
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            JsonNode st;
            do {
                st = JSON.readTree(LocalCluster.get(url));
            } while (st.get("usedBlocks").asInt() != 0 && System.nanoTime() < until);
            assertThat(st.get("usedBlocks").asInt())
                    .as("decode worker %d's pool after the burst", d)
                    .isZero();
        }
    }

    @Test
    @Order(4)
    void underSteadyLoadAReservationNobodyUsesIsReleasedWithinKvWaitMillis() throws Exception {
        String body = JSON.writeValueAsString(Map.of(
                "model", MODEL, "prompt", "a long answer", "max_tokens", 2000, "temperature", 0, "stream", true));
        CompletableFuture<HttpResponse<String>> stream = CompletableFuture.supplyAsync(() -> {
            try {
                return LocalCluster.post(cluster.url() + "/v1/completions", body);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        int busy = -1;
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (busy < 0 && System.nanoTime() < until) {
            for (int d = 0; d < 2 && busy < 0; d++) {
                if (status(d).get("active").asInt() > 0) busy = d;
            }
            Thread.sleep(20);
        }
        assertThat(busy).as("a decode worker is busy with the long stream").isGreaterThanOrEqualTo(0);
        int before = status(busy).get("usedBlocks").asInt();
        HttpResponse<String> r = LocalCluster.post(
                cluster.decodeUrl(busy) + "/internal/reserve",
                "{\"reservationId\":4242,\"promptTokens\":64,\"maxTokens\":64}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        long t0 = System.nanoTime();
        assertThat(status(busy).get("usedBlocks").asInt()).isEqualTo(before + 4);
        JsonNode st;
        do {
            Thread.sleep(50);
            st = status(busy);
            assertThat(st.get("active").asInt())
                    .as("the batch stays busy meanwhile")
                    .isPositive();
        } while (st.get("usedBlocks").asInt() != before
                && System.nanoTime() - t0 < TimeUnit.MILLISECONDS.toNanos(KV_WAIT_MILLIS + 1000));
        long took = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        assertThat(st.get("usedBlocks").asInt())
                .as("blocks after the unused reservation was reaped (%d ms)", took)
                .isEqualTo(before);
        assertThat(took).isLessThanOrEqualTo(KV_WAIT_MILLIS + 1000);
        assertThat(stream.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
    }

    private static JsonNode status(int decode) throws Exception {
        return JSON.readTree(LocalCluster.get(cluster.decodeUrl(decode) + "/internal/status"));
    }

    @Test
    @Order(5)
    void tokensReachTheClientAsTheyAreMadeNotInABurstAtTheEnd() throws Exception {
        String body = JSON.writeValueAsString(
                Map.of("model", MODEL, "prompt", "count slowly", "max_tokens", 300, "temperature", 0, "stream", true));
        long t0 = System.nanoTime();
        HttpResponse<InputStream> r = LeakCheckingClient.create()
                .send(
                        HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                                .header("Content-Type", "application/json")
                                .POST(HttpRequest.BodyPublishers.ofString(body))
                                .build(),
                        HttpResponse.BodyHandlers.ofInputStream());
        assertThat(r.headers().firstValue("x-mooncakej-prefill"))
                .as("a stream names its prefill worker")
                .hasValueSatisfying(u -> assertThat(u).isIn("prefill-0", "prefill-1"));
        assertThat(r.headers().firstValue("x-mooncakej-decode"))
                .hasValueSatisfying(u -> assertThat(u).isIn("decode-0", "decode-1"));
        List<Long> arrivals = new ArrayList<>();
        try (var in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null)
                if (line.startsWith("data:") && !line.contains("[DONE]")) arrivals.add(System.nanoTime() - t0);
        }
        assertThat(arrivals).hasSizeGreaterThan(100);
        long first = arrivals.get(0), half = arrivals.get(arrivals.size() / 2), last = arrivals.getLast();
        assertThat(half - first)
                .as(
                        "the middle chunk came %d ms after the first, the last %d ms after it: streamed, not buffered",
                        (half - first) / 1_000_000, (last - first) / 1_000_000)
                .isGreaterThan((last - first) / 4);
    }
}
