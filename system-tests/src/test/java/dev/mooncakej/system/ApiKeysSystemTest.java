package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.errors.UnauthorizedException;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.mooncakej.engine.generate.ModelGenerator;
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
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * API keys on the OpenAI endpoint ({@code ./mooncakej up --api-keys FILE}, simulated engine): no key
 * and a wrong key get 401 with an OpenAI error body ({@code invalid_api_key}), the official SDK with
 * a right key is served; a key over its concurrency limit gets 429 with Retry-After while another key
 * is served; two salted tenants share no prefix (B sending A's exact prompt reports no cached tokens).
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class ApiKeysSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = LeakCheckingClient.create();
    private static final String ALPHA = "sk-alpha-" + Long.toHexString(new Random().nextLong());
    private static final String BETA = "sk-beta-" + Long.toHexString(new Random().nextLong());
    private static LocalCluster cluster;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-keys");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        Path keys = Files.writeString(
                dir.resolve("api-keys"),
                "# key name limits\n" + ALPHA + " alpha max-concurrent=1 salt\n" + "sha256:" + sha256(BETA)
                        + " beta salt\n");
        cluster = LocalCluster.start(
                model,
                1,
                1,
                Map.of(),
                "--api-keys",
                keys.toString(),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.2");
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    private static String sha256(String s) throws Exception {
        return HexFormat.of()
                .formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    }

    private static HttpResponse<String> complete(String key, String prompt, int maxTokens) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                .timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(Map.of(
                        "model", "mooncakej-tiny", "prompt", prompt, "max_tokens", maxTokens, "temperature", 0))));
        if (key != null) b.header("Authorization", "Bearer " + key);
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void noKeyAndAWrongKeyGet401AndARightKeyIsServed() throws Exception {
        for (String key : new String[] {null, "sk-wrong-0123456789abcdef"}) {
            HttpResponse<String> r = complete(key, "hello", 2);
            assertThat(r.statusCode()).as("key %s", key).isEqualTo(401);
            JsonNode err = JSON.readTree(r.body()).path("error");
            assertThat(err.path("code").asString()).isEqualTo("invalid_api_key");
            assertThat(err.path("type").asString()).isEqualTo("invalid_request_error");
            assertThat(r.body()).doesNotContain(ALPHA);
        }
        OpenAIClient good = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey(BETA)
                .timeout(Duration.ofSeconds(60))
                .build();
        Completion c = good.completions()
                .create(CompletionCreateParams.builder()
                        .model("mooncakej-tiny")
                        .prompt("hello there")
                        .maxTokens(3)
                        .temperature(0.0)
                        .build());
        assertThat(c.choices()).hasSize(1);
        OpenAIClient bad = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("sk-not-a-key-0123456789")
                .timeout(Duration.ofSeconds(60))
                .build();
        assertThatThrownBy(() -> bad.models().list()).isInstanceOf(UnauthorizedException.class);
        String publicPage = LocalCluster.get(cluster.url() + "/actuator/prometheus");
        assertThat(publicPage)
                .as("the public page has totals by outcome, no tenant")
                .containsPattern("mooncakej_api_requests_total\\{[^}]*outcome=\"admitted\"")
                .doesNotContain("key=\"beta\"")
                .doesNotContain("key=\"alpha\"");
        assertThat(LocalCluster.get(cluster.url() + "/internal/api-keys/metrics"))
                .as("per-key meters on the credentialed plane")
                .containsPattern("mooncakej_api_key_requests_total\\{[^}]*key=\"beta\"[^}]*outcome=\"admitted\"");
        assertThat(HTTP.send(
                                HttpRequest.newBuilder(URI.create(cluster.url() + "/internal/api-keys/metrics"))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString())
                        .statusCode())
                .as("per-key meters without the credential")
                .isEqualTo(401);
    }

    @Test
    void aKeyOverItsConcurrencyLimitGets429WhileAnotherKeyIsServed() throws Exception {
        // alpha may run one request at a time: a long stream holds its slot
        CompletableFuture<Integer> streamed = new CompletableFuture<>();
        CompletableFuture<Void> started = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                HttpResponse<InputStream> r = HTTP.send(
                        HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                                .header("Content-Type", "application/json")
                                .header("Authorization", "Bearer " + ALPHA)
                                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(Map.of(
                                        "model",
                                        "mooncakej-tiny",
                                        "prompt",
                                        "a long story",
                                        "max_tokens",
                                        1500,
                                        "stream",
                                        true))))
                                .build(),
                        HttpResponse.BodyHandlers.ofInputStream());
                int chunks = 0;
                try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (line.startsWith("data:")) {
                            chunks++;
                            started.complete(null);
                        }
                    }
                }
                streamed.complete(r.statusCode());
            } catch (Exception e) {
                started.completeExceptionally(e);
                streamed.completeExceptionally(e);
            }
        });
        started.get(60, TimeUnit.SECONDS);
        HttpResponse<String> second = complete(ALPHA, "another", 2);
        assertThat(second.statusCode()).as(second.body()).isEqualTo(429);
        assertThat(second.headers().firstValue("Retry-After")).isPresent();
        assertThat(JSON.readTree(second.body()).path("error").path("code").asString())
                .isEqualTo("rate_limit_exceeded");
        HttpResponse<String> other = complete(BETA, "meanwhile", 2);
        assertThat(other.statusCode())
                .as("beta while alpha is at its limit: %s", other.body())
                .isEqualTo(200);
        assertThat(streamed.get(120, TimeUnit.SECONDS)).isEqualTo(200);
        // the slot comes back once the stream has ended
        assertThat(complete(ALPHA, "after", 2).statusCode()).isEqualTo(200);
    }

    @Test
    void twoSaltedTenantsShareNoPrefix() throws Exception {
        StringBuilder p = new StringBuilder();
        Random rnd = new Random(11);
        while (p.length() < 1200) p.append("w").append(rnd.nextInt(900)).append(' ');
        String prompt = p.toString();
        assertThat(cached(complete(BETA, prompt, 2))).isZero();
        assertThat(cached(complete(BETA, prompt, 2))).as("beta's repeat").isPositive();
        assertThat(cached(complete(ALPHA, prompt, 2)))
                .as("alpha sending beta's exact prompt")
                .isZero();
    }

    private static int cached(HttpResponse<String> r) throws Exception {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body())
                .path("usage")
                .path("prompt_tokens_details")
                .path("cached_tokens")
                .asInt();
    }
}
