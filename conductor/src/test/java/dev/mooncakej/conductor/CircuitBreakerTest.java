package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Resilience4j on the conductor's worker calls, with stand-in workers (real HTTP servers): a healthy
 * prefill worker and two decode workers, one answering 500 to every reservation, the other always full. The failing
 * worker's circuit breaker
 * opens and takes it out of scheduling (it gets no more calls); once it answers properly again, the
 * half-open breaker's trial calls bring it back.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class CircuitBreakerTest {
    private static HttpServer broken;
    private static HttpServer full;
    private static HttpServer prefill;
    private static final AtomicInteger brokenCalls = new AtomicInteger();
    private static final AtomicBoolean healed = new AtomicBoolean();

    @Autowired
    Environment env;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) throws Exception {
        broken = ConductorFixtures.jsonWorker(
                "/internal/reserve",
                () -> {
                    brokenCalls.incrementAndGet();
                    return healed.get() ? 429 : 500;
                },
                () -> healed.get()
                        ? "{\"code\":\"kv_full\",\"message\":\"full\"}"
                        : "{\"code\":\"internal\",\"message\":\"broken\"}");
        full = ConductorFixtures.fullDecodeWorker();
        prefill = ConductorFixtures.jsonWorker(
                "/internal/kv-index",
                () -> 200,
                () -> "{\"worker\":\"p\",\"blockKeys\":[]}"); // a healthy prefill stand-in
        String model = ConductorFixtures.model().toString();
        r.add("mooncakej.conductor.model", () -> model);
        r.add(
                "mooncakej.conductor.prefill-workers",
                () -> "http://127.0.0.1:" + prefill.getAddress().getPort());
        r.add(
                "mooncakej.conductor.decode-workers",
                () -> "http://127.0.0.1:" + broken.getAddress().getPort() + ",http://127.0.0.1:"
                        + full.getAddress().getPort());
        r.add("resilience4j.circuitbreaker.configs.default.wait-duration-in-open-state", () -> "2s");
    }

    @AfterAll
    static void stop() {
        broken.stop(0);
        full.stop(0);
        prefill.stop(0);
    }

    private String decodeWorkers() throws Exception {
        return HttpClient.newHttpClient()
                .send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + env.getProperty("local.server.port")
                                        + "/internal/leader"))
                                .header(
                                        ClusterCredential.HEADER,
                                        ClusterCredential.of("conductor-test-secret-0123456789")
                                                .value())
                                .build(),
                        HttpResponse.BodyHandlers.ofString())
                .body();
    }

    private void requests(int n) throws Exception {
        for (int i = 0; i < n; i++) {
            HttpResponse<String> r = ConductorFixtures.post(
                    Integer.parseInt(env.getProperty("local.server.port")),
                    "/v1/completions",
                    "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hi " + i + "\",\"max_tokens\":2}");
            assertThat(r.statusCode()).as(r.body()).isIn(429, 503);
        }
    }

    @Test
    void anOpenBreakerTakesTheWorkerOutUntilItRecovers() throws Exception {
        ConductorFixtures.awaitAdmitted(Integer.parseInt(env.getProperty("local.server.port")));
        String brokenUrl = "http://127.0.0.1:" + broken.getAddress().getPort();
        requests(8);
        long until = System.nanoTime() + 5_000_000_000L;
        while (decodeWorkers().contains(brokenUrl) && System.nanoTime() < until) Thread.sleep(50);
        assertThat(decodeWorkers()).as("the broken worker left scheduling").doesNotContain(brokenUrl);
        int before = brokenCalls.get();
        requests(5);
        assertThat(brokenCalls.get()).as("no calls while its breaker is open").isEqualTo(before);

        healed.set(true);
        until = System.nanoTime() + 10_000_000_000L;
        while (!decodeWorkers().contains(brokenUrl) && System.nanoTime() < until) Thread.sleep(100);
        assertThat(decodeWorkers())
                .as("half-open: back in scheduling for trial calls")
                .contains(brokenUrl);
        requests(6);
        assertThat(brokenCalls.get()).as("trial calls reach it again").isGreaterThan(before);
        Thread.sleep(300);
        assertThat(decodeWorkers()).as("closed again after good trial calls").contains(brokenUrl);
    }
}
