package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Issue 24 on the built-in engine (the small model), {@code up --prefill 2 --decode 1}: (1) the first ten
 * requests to a freshly started cluster are predicted from the workers' start-up calibration and the
 * conductor's lone start-up requests (TTFT prediction error
 * p50 <= 0.35 from the estimator metric; before, the estimators started from LLaMA3-70B coefficients
 * and refit every 16 prefills); (2) after a prefix was computed on one worker, eight concurrent
 * requests sharing it report it cached on whichever worker serves them (before, the scheduler marked
 * the chosen worker as holding the prefix at decision time, and the worker neither waited for the
 * blocks another request there was fetching nor asked the pool: "(local prefix)", 0 cached), with
 * outputs equal to a one-worker cluster's.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class SchedulingSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    /**
     * The bound. On the small model (its prompts take 30-900 ms of compute) the first ten
     * measured 0.14 here; on the tiny one (20-60 ms TTFTs, where the hop's jitter of a few ms on a
     * shared 2-core machine is 20-50%) 0.22-0.61, which says more about the machine than the estimator.
     */
    static final double FIRST_TEN_ERROR_BOUND = 0.35;

    private static final int PREFIX = 640, SUFFIX = 192, CONCURRENT = 8, MAX_TOKENS = 6;

    private static JsonNode complete(LocalCluster c, Object prompt, Map<String, String> headersOut) throws Exception {
        String body = JSON.writeValueAsString(
                Map.of("model", "mooncakej-small", "prompt", prompt, "max_tokens", MAX_TOKENS, "temperature", 0));
        HttpResponse<String> r = LocalCluster.post(c.url() + "/v1/completions", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        if (headersOut != null)
            headersOut.put(
                    "prefill", r.headers().firstValue("x-mooncakej-prefill").orElse("?"));
        return JSON.readTree(r.body());
    }

    private static int[] ids(Random rnd, int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = 3 + rnd.nextInt(250); // within the small model's vocabulary of 768
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void predictionsAreRightFromTheFirstRequestAndConcurrentRequestsShareAPrefixInFlight() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-scheduling");
        Path model = dir.resolve("small.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.SMALL, model);
        Random rnd = new Random(24);
        int[] prefix = ids(rnd, PREFIX);
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < CONCURRENT; i++) prompts.add(concat(prefix, ids(rnd, SUFFIX)));
        List<String> texts = new ArrayList<>();
        Map<String, Integer> servedBy = new TreeMap<>();
        try (LocalCluster cluster = LocalCluster.start(model, 2, 1)) {
            // (1) ten requests of varied lengths, one after the other, on the fresh cluster
            int[] lengths = {5, 40, 120, 300, 20, 200, 60, 500, 10, 250};
            for (int n : lengths) complete(cluster, ids(rnd, n), null);
            JsonNode est = JSON.readTree(LocalCluster.get(cluster.url() + "/internal/estimators"));
            double p50 = LocalCluster.metric(cluster.url(), "mooncakej_estimator_ttft_error_ratio{stat=\"p50\"");
            System.out.println("first ten requests: TTFT prediction error " + est.path("ttft_error")
                    + ", prefill model " + est.path("prefill"));
            cluster.log("conductor") // each request's prediction beside its TTFT, and what it was made of
                    .lines()
                    .filter(l -> l.contains(" TTFT ") || l.contains("warmed"))
                    .forEach(l -> System.out.println(l.substring(l.indexOf(" : ") + 3)));
            assertThat(est.path("ttft_error").path("samples").asLong())
                    .as("the conductor's own warm-up requests are not counted")
                    .isEqualTo(lengths.length);
            assertThat(p50)
                    .as("TTFT prediction error p50 over the first ten requests: " + est)
                    .isLessThanOrEqualTo(FIRST_TEN_ERROR_BOUND);

            // (2) the prefix computed once, then eight concurrent requests sharing it
            JsonNode first = complete(cluster, concat(prefix, ids(rnd, 40)), null);
            assertThat(first.path("usage")
                            .path("prompt_tokens_details")
                            .path("cached_tokens")
                            .asInt())
                    .isZero();
            ExecutorService pool = Executors.newFixedThreadPool(CONCURRENT);
            try {
                List<Future<Map.Entry<String, JsonNode>>> fs = new ArrayList<>();
                for (int[] p : prompts) {
                    Callable<Map.Entry<String, JsonNode>> call = () -> {
                        Map<String, String> h = new TreeMap<>();
                        JsonNode r = complete(cluster, p, h);
                        return Map.entry(h.get("prefill"), r);
                    };
                    fs.add(pool.submit(call));
                }
                for (var f : fs) {
                    var e = f.get(120, TimeUnit.SECONDS);
                    servedBy.merge(e.getKey(), 1, Integer::sum);
                    int cached = e.getValue()
                            .path("usage")
                            .path("prompt_tokens_details")
                            .path("cached_tokens")
                            .asInt();
                    assertThat(cached)
                            .as(
                                    "request served by %s: the shared %d-token prefix is cached (%s)",
                                    e.getKey(), PREFIX, servedBy)
                            .isEqualTo(PREFIX);
                    texts.add(e.getValue().path("choices").get(0).path("text").asString());
                }
            } finally {
                pool.shutdownNow();
            }
            System.out.println("the eight concurrent requests were served by " + servedBy);
            assertThat(servedBy)
                    .as("both prefill workers served some (else this proves nothing about the second)")
                    .hasSize(2);
        }
        // the same prompts on a one-worker cluster, one at a time: the same greedy outputs
        try (LocalCluster one = LocalCluster.start(model, 1, 1)) {
            List<String> alone = new ArrayList<>();
            for (int[] p : prompts)
                alone.add(complete(one, p, null)
                        .path("choices")
                        .get(0)
                        .path("text")
                        .asString());
            assertThat(texts).isEqualTo(alone);
        }
    }
}
