package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The conductor's answer under overload: 429 with Retry-After and an OpenAI error body when every
 * decode worker's KV cache is full (the decode worker here is a stand-in that is always full), and the
 * conductor keeps answering. (503 for unreachable workers: {@link NoWorkerTest}.)
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OverloadTest {
    private static HttpServer full, prefill;

    @Autowired
    Environment env;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws Exception {
        full = ConductorFixtures.fullDecodeWorker();
        prefill = ConductorFixtures.jsonWorker("/internal/kv-index", () -> 200, () -> "{\"blockKeys\":[]}");
        String model = ConductorFixtures.model().toString();
        r.add("mooncakej.conductor.model", () -> model);
        r.add(
                "mooncakej.conductor.prefill-workers",
                () -> "http://127.0.0.1:" + prefill.getAddress().getPort());
        r.add(
                "mooncakej.conductor.decode-workers",
                () -> "http://127.0.0.1:" + full.getAddress().getPort());
    }

    @AfterAll
    static void stop() {
        full.stop(0);
        prefill.stop(0);
    }

    private int port() {
        return Integer.parseInt(env.getProperty("local.server.port"));
    }

    @Test
    void fullKvCacheEverywhereIs429WithRetryAfter() throws Exception {
        ConductorFixtures.awaitAdmitted(Integer.parseInt(env.getProperty("local.server.port")));
        HttpResponse<String> r = ConductorFixtures.post(
                port(),
                "/v1/chat/completions",
                "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4"
                        + "}");
        assertThat(r.statusCode()).isEqualTo(429);
        assertThat(r.headers().firstValue("Retry-After")).hasValue("1");
        assertThat(r.body())
                .contains("\"type\":\"rate_limit_exceeded\"")
                .contains("\"code\":\"overloaded\"")
                .doesNotContain("Exception");
        HttpResponse<String> again = ConductorFixtures.post(
                port(), "/v1/completions", "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hi\",\"stream\":true}");
        assertThat(again.statusCode())
                .as("streaming requests get the status too")
                .isEqualTo(429);
        HttpResponse<String> models = HttpClient.newHttpClient()
                .send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port() + "/v1/models"))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
        assertThat(models.statusCode()).isEqualTo(200);
    }
}
