package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePutStarted;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplica;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import dev.mooncakej.kvstore.client.StoreClient;
import dev.mooncakej.kvtransfer.engine.LocalSegmentRegistry;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The KV pool as a user runs it ({@code ./mooncakej up --prefill 1 --decode 1}, built-in engine, a
 * prefill worker with room for two long prompts and an SSD tier): the store master's put, get,
 * exists and remove (and their batch forms) against the real workers' memory, written and read back
 * through a transfer engine of the test's own; turn 2 of a conversation reuses turn 1's prompt and
 * answer, which the decode worker put into the pool; a prompt evicted from DRAM is served from the
 * SSD tier with identical output.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class KvPoolSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String SECRET =
            "kv-pool-test-secret-" + ProcessHandle.current().pid();
    private static final int PREFILL_BLOCKS = 48; // two prompts of ~20 blocks
    private static LocalCluster cluster;
    private static Path ssdDir;
    private static StoreClient store;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-pool");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        ssdDir = Files.createDirectories(dir.resolve("ssd"));
        cluster = LocalCluster.start(
                model,
                1,
                1,
                Map.of(
                        "MOONCAKEJ_KV_SECRET", SECRET,
                        "MOONCAKEJ_STORE_SSDDIR", ssdDir.toString(),
                        "MOONCAKEJ_STORE_SSDBYTES", String.valueOf(64L << 20),
                        "MOONCAKEJ_PREFILL_KVBLOCKS", String.valueOf(PREFILL_BLOCKS)),
                "--kv-transports",
                "shm,tcp");
        store = new StoreClient((path, json) -> {
            try {
                HttpResponse<String> r = LocalCluster.post(cluster.url() + path, json);
                return r.statusCode() / 100 == 2 ? r.body() : null;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        // the workers have mounted their pool segments (heartbeats every 200 ms)
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!LocalCluster.get(cluster.url() + "/actuator/prometheus")
                        .contains("mooncakej_store_segment_capacity_bytes{kind=\"pool\"")
                && System.nanoTime() < until) Thread.sleep(200);
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    @Test
    void putGetExistsAndRemoveMoveRealBytesThroughTheWorkersMemory() throws Exception {
        long blockBytes = 4096;
        long[] keys = {new Random().nextLong(), 11, 12, 13};
        try (TransferEngine client = new TransferEngine(
                "storetest-" + ProcessHandle.current().pid(),
                new LocalSegmentRegistry(Path.of("/dev/shm")),
                1 << 20,
                TransferConfig.defaults(SECRET, Path.of("/dev/shm")).withTransports(List.of("tcp")))) {
            MemorySegment out = client.allocate(keys.length * blockBytes, "cpu:0");
            MemorySegment in = client.allocate(keys.length * blockBytes, "cpu:0");
            Random rnd = new Random(5);
            for (long i = 0; i < out.byteSize(); i++) out.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt());

            // put start (batch): one replica per key in a worker's pool; not readable until ended
            StorePutStarted started = store.putStart("storetest", keys, blockBytes, null);
            assertThat(started.status()).containsOnly("started");
            assertThat(started.replicas())
                    .allSatisfy(r -> assertThat(r.segment()).endsWith(":pool"));
            assertThat(store.exists(keys)).containsOnly("false");
            assertThat(store.putStart("storetest", keys, blockBytes, null).status())
                    .containsOnly("exists");
            // the writer moves the bytes into the workers' memory through its own transfer engine
            List<TransferRequest> writes = new ArrayList<>();
            for (int i = 0; i < keys.length; i++) {
                StoreReplica r = started.replicas().get(i);
                client.openSegment(StoreClient.transferSegment(r.segment()));
                writes.add(new TransferRequest(
                        TransferRequest.Opcode.WRITE,
                        client.offsetOf(out) + i * blockBytes,
                        StoreClient.transferSegment(r.segment()),
                        r.offset(),
                        blockBytes));
            }
            assertThat(client.submit(writes).done().join().allCompleted()).isTrue();
            assertThat(store.putEnd(keys)).containsOnly("true");
            assertThat(store.putEnd(keys)).as("a second end").containsOnly("false");

            // get (batch): the replicas under a lease; the bytes read back are the bytes written
            StoreReplicas got = store.get(keys);
            assertThat(got.leaseUntilMillis()).isGreaterThan(System.currentTimeMillis());
            List<TransferRequest> reads = new ArrayList<>();
            for (int i = 0; i < keys.length; i++) {
                StoreReplica r = got.replicas().get(i).getFirst();
                reads.add(new TransferRequest(
                        TransferRequest.Opcode.READ,
                        client.offsetOf(in) + i * blockBytes,
                        StoreClient.transferSegment(r.segment()),
                        r.offset(),
                        blockBytes));
            }
            TransferBatch b = client.submit(reads).done().join();
            assertThat(b.allCompleted()).as(String.valueOf(b.firstProblem())).isTrue();
            assertThat(in.mismatch(out)).as("first differing byte").isEqualTo(-1);
            assertThat(store.exists(keys)).containsOnly("true");

            // remove: refused while a reader holds its lease, forced, then gone for everyone
            assertThat(store.remove(new long[] {keys[0]}, false)).containsExactly("busy");
            assertThat(store.remove(new long[] {keys[0], keys[1]}, true)).containsExactly("removed", "removed");
            assertThat(store.remove(new long[] {keys[0]}, true)).containsExactly("not_found");
            assertThat(store.exists(keys)).containsExactly("false", "false", "true", "true");
            assertThat(store.get(new long[] {keys[0]}).replicas().getFirst()).isEmpty();
            store.remove(new long[] {keys[2], keys[3]}, true);

            // revoke: a put that failed frees its space and never becomes readable
            long[] failed = {rnd.nextLong(), rnd.nextLong()};
            assertThat(store.putStart("storetest", failed, blockBytes, null).status())
                    .containsOnly("started");
            assertThat(store.putRevoke(failed)).containsOnly("true");
            assertThat(store.exists(failed)).containsOnly("false");
            assertThat(store.putRevoke(failed)).containsOnly("false");
        }
        // a bad message is refused by name, and the master keeps serving
        HttpResponse<String> bad = LocalCluster.post(
                cluster.url() + "/internal/store/put-start",
                "{\"client\":\"c\",\"keys\":[1],\"blockBytes\":0,\"preferredSegment\":null}");
        assertThat(bad.statusCode()).isEqualTo(400);
        assertThat(bad.body()).contains("blockBytes 0");
        HttpResponse<String> unknown =
                LocalCluster.post(cluster.url() + "/internal/store/exists", "{\"keys\":[1],\"force\":false,\"x\":1}");
        assertThat(unknown.statusCode()).isEqualTo(400);
        assertThat(unknown.body()).contains("x");
        assertThat(store.exists(new long[] {1})).containsExactly("false");
    }

    private static JsonNode chat(List<Map<String, String>> messages, int maxTokens) throws Exception {
        HttpResponse<String> r = LocalCluster.post(
                cluster.url() + "/v1/chat/completions",
                JSON.writeValueAsString(Map.of(
                        "model", "mooncakej-tiny", "messages", messages, "max_tokens", maxTokens, "temperature", 0)));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    private static int cached(JsonNode response) {
        return response.path("usage")
                .path("prompt_tokens_details")
                .path("cached_tokens")
                .asInt();
    }

    @Test
    void turnTwoOfAConversationReusesTurnOnesPromptAndAnswer() throws Exception {
        List<Map<String, String>> turn1 = List.of(Map.of("role", "user", "content", words(7, 100)));
        JsonNode first = chat(turn1, 64);
        String answer =
                first.path("choices").get(0).path("message").path("content").asText();
        int prompt1 = first.path("usage").path("prompt_tokens").asInt();
        int answerTokens = first.path("usage").path("completion_tokens").asInt();
        assertThat(answerTokens).as("turn 1's answer").isGreaterThan(40);
        // the decode worker puts the finished sequence into the pool; the master tells the scheduler
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!LocalCluster.get(cluster.decodeUrl(0) + "/actuator/prometheus")
                        .matches("(?s).*mooncakej_decode_pool_put_blocks_total\\{[^}]*} [1-9].*")
                && System.nanoTime() < until) Thread.sleep(100);
        System.out.println(LocalCluster.get(cluster.decodeUrl(0) + "/actuator/prometheus")
                .lines()
                .filter(l -> l.contains("pool_put"))
                .toList());
        List<Map<String, String>> turn2 = List.of(
                turn1.getFirst(),
                Map.of("role", "assistant", "content", answer),
                Map.of("role", "user", "content", "and then?"));
        JsonNode second = chat(turn2, 4);
        int promptBlocks = prompt1 / 32 * 32;
        assertThat(cached(second))
                .as("turn 2's cached tokens (turn 1: %d prompt tokens, %d answer tokens)", prompt1, answerTokens)
                .isGreaterThan(promptBlocks);
        assertThat(LocalCluster.get(cluster.decodeUrl(0) + "/actuator/prometheus"))
                .containsPattern("mooncakej_decode_pool_put_blocks_total\\{[^}]*} [1-9]");
    }

    private static String words(long seed, int n) {
        Random rnd = new Random(seed);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) sb.append(i == 0 ? "" : " ").append("w").append(rnd.nextInt(2000));
        return sb.toString();
    }

    private static JsonNode complete(String prompt) throws Exception {
        HttpResponse<String> r = LocalCluster.post(
                cluster.url() + "/v1/completions",
                JSON.writeValueAsString(
                        Map.of("model", "mooncakej-tiny", "prompt", prompt, "max_tokens", 6, "temperature", 0)));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    @Test
    void aPromptEvictedFromDramIsServedFromTheSsdTier() throws Exception {
        String a = words(100, 100);
        JsonNode first = complete(a);
        assertThat(first.path("usage").path("prompt_tokens").asInt())
                .as("a prompt of more than a quarter of the prefill worker's blocks")
                .isGreaterThan(PREFILL_BLOCKS / 4 * 32);
        for (int i = 1; i <= 4; i++) complete(words(100 + i, 100)); // four more as long: a's blocks go to the SSD tier
        String metrics = LocalCluster.get(cluster.prefillUrl(0) + "/actuator/prometheus");
        assertThat(metrics).containsPattern("mooncakej_prefill_ssd_writes_total\\{[^}]*} [1-9]");
        JsonNode again = complete(a);
        assertThat(cached(again))
                .as("a's cached tokens, read back from the SSD tier")
                .isGreaterThan(PREFILL_BLOCKS / 4 * 32);
        assertThat(again.path("choices").get(0).path("text").asText())
                .as("output with the prefix from the SSD tier")
                .isEqualTo(first.path("choices").get(0).path("text").asText());
        assertThat(LocalCluster.get(cluster.prefillUrl(0) + "/actuator/prometheus"))
                .containsPattern("mooncakej_prefill_ssd_tokens_total\\{[^}]*} [1-9]");
        try (var files = Files.list(ssdDir)) {
            assertThat(files.map(f -> f.getFileName().toString()).toList())
                    .anySatisfy(
                            f -> assertThat(f).startsWith("mooncakej-prefill-").endsWith(".ssd"));
        }
    }
}
