package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The live conductor runs the scheduler core chosen in YAML: with a TTFT SLO no prefill can meet, the
 * admission rejects at arrival with 429 and Retry-After, before any worker is called.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class LiveAdmissionTest {
    @Autowired
    Environment env;

    private static final HttpServer stub = stub();

    private static HttpServer stub() {
        try {
            return ConductorFixtures.jsonWorker("/internal/kv-index", () -> 200, () -> "{\"blockKeys\":[]}");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws Exception {
        String model = ConductorFixtures.model().toString();
        // stand-ins without a profile route (admitted unchecked); the request is refused before any call
        int closed = stub.getAddress().getPort();
        r.add("mooncakej.conductor.model", () -> model);
        r.add("mooncakej.conductor.prefill-workers", () -> "http://127.0.0.1:" + closed);
        r.add("mooncakej.conductor.decode-workers", () -> "http://127.0.0.1:" + closed);
        r.add("mooncakej.conductor.policy", () -> "least-loaded");
        r.add("mooncakej.conductor.admission", () -> "predictive-early-rejection");
        r.add("mooncakej.conductor.ttft-slo-seconds", () -> "0.000001");
    }

    @Test
    void predictedTtftOverTheSloIs429AtArrival() throws Exception {
        ConductorFixtures.awaitAdmitted(Integer.parseInt(env.getProperty("local.server.port")));
        HttpResponse<String> r = ConductorFixtures.post(
                Integer.parseInt(env.getProperty("local.server.port")),
                "/v1/completions",
                "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hello there\",\"max_tokens\":4}");
        assertThat(r.statusCode()).isEqualTo(429);
        assertThat(r.headers().firstValue("Retry-After")).hasValue("1");
        assertThat(r.body()).contains("\"code\":\"overloaded\"").contains("TTFT");
    }
}
