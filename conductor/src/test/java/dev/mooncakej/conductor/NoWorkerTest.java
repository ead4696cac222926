package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * With no reachable worker the conductor answers 503 with an OpenAI error body: listed workers that
 * never answered are not admitted (their profile was never read), so nothing is scheduled on them.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class NoWorkerTest {
    @Autowired
    Environment env;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws Exception {
        int closedA = ConductorFixtures.closedPort();
        int closedB = ConductorFixtures.closedPort();
        String model = ConductorFixtures.model().toString();
        r.add("mooncakej.conductor.model", () -> model);
        r.add("mooncakej.conductor.prefill-workers", () -> "http://127.0.0.1:" + closedA);
        r.add("mooncakej.conductor.decode-workers", () -> "http://127.0.0.1:" + closedB);
    }

    @Test
    void unreachableWorkersGive503() throws Exception {
        HttpResponse<String> r = ConductorFixtures.post(
                Integer.parseInt(env.getProperty("local.server.port")),
                "/v1/completions",
                "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hello\",\"max_tokens\":4}");
        assertThat(r.statusCode()).isEqualTo(503);
        assertThat(r.headers().firstValue("Retry-After")).isPresent();
        assertThat(r.body())
                .contains("\"type\":\"service_unavailable\"")
                .contains("\"code\":\"no_workers\"")
                .contains("have not answered the conductor yet")
                .doesNotContain("\tat ");
    }
}
