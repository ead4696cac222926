package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.sampling.TextGenerator;
import dev.mooncakej.engine.spi.PrefillOptions;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Fencing against the running cluster ({@code ./mooncakej up}, built-in engine): clients that hang up
 * while their prompt is being prefilled make the conductor drop their reservations while the prefill
 * worker may still be writing them. Those blocks must reach no other request until the writer has
 * stopped: every completed output still equals the single-engine reference, and every pool returns
 * to where it started.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class FencingSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int ROUNDS = 50, CLIENTS = 10, MAX_TOKENS = 12;
    private static LocalCluster cluster;
    private static LlamaEngine reference;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-fencing");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(
                model,
                2,
                1,
                Map.of(
                        "MOONCAKEJ_DECODE_KVBLOCKS",
                        "640",
                        "MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS",
                        "3600") /* not an admission test */,
                "--kv-transports",
                "shm,tcp");
        reference = new LlamaEngine(LlamaEngine.Config.of(model));
    }

    @AfterAll
    static void down() {
        if (reference != null) reference.close();
        if (cluster != null) cluster.close();
    }

    /** A prompt of about 700 tokens that shares no block with any other (its first words are unique). */
    private static String prompt(int round, int client, Random rnd) {
        StringBuilder sb = new StringBuilder("round ")
                .append(round)
                .append(" client ")
                .append(client)
                .append(':');
        while (sb.length() < 700) sb.append(' ').append("kv").append(rnd.nextInt(5000));
        return sb.toString();
    }

    @Test
    void clientsHangingUpMidPrefillNeverCorruptAnotherRequestsOutputAndEveryPoolComesBack() throws Exception {
        JsonNode decodeBefore = JSON.readTree(LocalCluster.get(cluster.decodeUrl(0) + "/internal/status"));
        Random rnd = new Random(11);
        int completed = 0, leftEarly = 0;
        for (int round = 0; round < ROUNDS; round++) {
            List<String> prompts = new ArrayList<>();
            for (int c = 0; c < CLIENTS; c++) prompts.add(prompt(round, c, rnd));
            List<CompletableFuture<String>> outputs = new ArrayList<>();
            try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int c = 0; c < CLIENTS; c++) {
                    String body = JSON.writeValueAsString(Map.of(
                            "model",
                            "mooncakej-tiny",
                            "prompt",
                            prompts.get(c),
                            "max_tokens",
                            MAX_TOKENS,
                            "temperature",
                            0));
                    boolean hangsUp = c % 3 == 0;
                    int delay = 2 + rnd.nextInt(80);
                    outputs.add(CompletableFuture.supplyAsync(
                            () -> hangsUp ? hangUpAfter(body, delay) : complete(body), pool));
                }
                for (int c = 0; c < CLIENTS; c++) {
                    String text = outputs.get(c).get(120, TimeUnit.SECONDS);
                    if (text == null) {
                        leftEarly++;
                        continue;
                    }
                    String expected = TextGenerator.generate(
                                    reference,
                                    reference.tokenizer().encode(prompts.get(c)),
                                    SamplingParams.greedy(MAX_TOKENS),
                                    PrefillOptions.DEFAULT)
                            .text();
                    assertThat(text)
                            .as("round %d client %d: output equals the single-engine reference", round, c)
                            .isEqualTo(expected);
                    completed++;
                }
            }
        }
        assertThat(completed).isEqualTo(ROUNDS * (CLIENTS - (CLIENTS + 2) / 3));
        assertThat(leftEarly).isEqualTo(ROUNDS * ((CLIENTS + 2) / 3));
        JsonNode decode = null, prefill = null;
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        do {
            Thread.sleep(200);
            decode = JSON.readTree(LocalCluster.get(cluster.decodeUrl(0) + "/internal/status"));
            prefill = JSON.readTree(LocalCluster.get(cluster.prefillUrl(0) + "/internal/status"));
        } while ((decode.get("usedBlocks").asInt()
                                != decodeBefore.get("usedBlocks").asInt()
                        || prefill.get("active").asInt() != 0)
                && System.nanoTime() < until);
        assertThat(decode.get("usedBlocks").asInt())
                .as("decode blocks in use after all requests")
                .isEqualTo(decodeBefore.get("usedBlocks").asInt());
        assertThat(decode.get("fencedBlocks").asInt())
                .as("decode blocks still fenced")
                .isZero();
        assertThat(prefill.get("usedBlocks").asInt())
                .as("prefill blocks in use = its prefix cache")
                .isEqualTo(prefill.get("cachedBlocks").asInt());
        String decodeLog = cluster.log("decode-0");
        assertThat(decodeLog)
                .as("some hang-ups did land mid-prefill (their blocks were fenced): the test exercised the fence")
                .contains("fenced until it confirms it stopped");
    }

    private static String complete(String body) {
        try {
            HttpResponse<String> r = LocalCluster.post(cluster.url() + "/v1/completions", body);
            if (r.statusCode() != 200) throw new IllegalStateException("status " + r.statusCode() + ": " + r.body());
            return JSON.readTree(r.body()).get("choices").get(0).get("text").asString();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sends the request on a raw socket and closes it after {@code millis}, before any answer is read. */
    private static String hangUpAfter(String body, int millis) {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        try (Socket s = new Socket("127.0.0.1", cluster.port)) {
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                            + "application/json\r\nContent-Length: "
                            + b.length + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.write(b);
            out.flush();
            Thread.sleep(millis);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        return null;
    }
}
