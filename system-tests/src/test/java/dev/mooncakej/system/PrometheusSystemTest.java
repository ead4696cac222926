package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.completions.CompletionCreateParams;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.ByteArrayOutputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The metrics as Prometheus users and vLLM tools see them (issue 29): each service's scrape passes
 * {@code promtool check metrics} (the project's {@code /actuator/prometheus} with no lint problem at
 * all; {@code /metrics}, which adds the vLLM-named metrics, with none but the ':' vLLM's names carry);
 * the vLLM-named metrics are there with the types vLLM documents and a {@code model_name} label, which
 * the project's own {@code mooncakej_*} metrics carry too; and
 * Debian's Prometheus, scraping a running cluster after a short load, evaluates every query of the
 * Grafana dashboard and of the alert rules to a non-empty result (the rules themselves load and
 * evaluate without error).
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class PrometheusSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final Path ROOT = LocalCluster.projectRoot();

    /** vLLM's serving metrics (docs.vllm.ai, "Production Metrics"), by name and Prometheus type. */
    private static final Map<String, String> VLLM = Map.of(
            "vllm:time_to_first_token_seconds", "histogram",
            "vllm:inter_token_latency_seconds", "histogram",
            "vllm:e2e_request_latency_seconds", "histogram",
            "vllm:prompt_tokens_total", "counter",
            "vllm:generation_tokens_total", "counter",
            "vllm:num_requests_running", "gauge",
            "vllm:num_requests_waiting", "gauge",
            "vllm:kv_cache_usage_perc", "gauge",
            "vllm:prefix_cache_queries_total", "counter",
            "vllm:prefix_cache_hits_total", "counter");

    private static LocalCluster cluster;
    private static Process prometheus;
    private static String prometheusUrl;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-prometheus");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(model, 1, 1, Map.of("MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS", "600"));
        // Prometheus as the docker/prometheus files configure it, scraping this cluster every 2 s (a
        // scrape may take a second on a busy machine)
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Files.copy(ROOT.resolve("docker/prometheus/alerts.yml"), dir.resolve("alerts.yml"));
        Files.writeString(dir.resolve("prometheus.yml"), """
                global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 1s}
                rule_files: [alerts.yml]
                scrape_configs:
                  - job_name: mooncakej
                    metrics_path: /metrics
                    static_configs:
                      - targets: ["%s"]
                        labels: {service: conductor}
                      - targets: ["%s"]
                        labels: {service: prefill-worker}
                      - targets: ["%s"]
                        labels: {service: decode-worker}
                """.formatted(
                        hostPort(cluster.url()), hostPort(cluster.prefillUrl(0)), hostPort(cluster.decodeUrl(0))));
        prometheus = new ProcessBuilder(
                        "prometheus",
                        "--config.file=" + dir.resolve("prometheus.yml"),
                        "--storage.tsdb.path=" + dir.resolve("data"),
                        "--web.listen-address=127.0.0.1:" + port)
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("prometheus.log").toFile())
                .start();
        prometheusUrl = "http://127.0.0.1:" + port;
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                if (LocalCluster.get(prometheusUrl + "/-/ready").contains("Ready")) break;
            } catch (Exception notYet) {
                // starting
            }
            assertThat(prometheus.isAlive())
                    .as("prometheus runs (%s)", dir.resolve("prometheus.log"))
                    .isTrue();
            assertThat(System.nanoTime()).as("prometheus ready within 60 s").isLessThan(until);
            Thread.sleep(200);
        }
    }

    @AfterAll
    static void down() throws Exception {
        if (prometheus != null) {
            prometheus.destroy();
            prometheus.waitFor(10, TimeUnit.SECONDS);
        }
        if (cluster != null) cluster.close();
    }

    private static String hostPort(String url) {
        return URI.create(url).getAuthority();
    }

    /** What {@code promtool check metrics} says about {@code scrape}: its problem lines (none: clean). */
    private static List<String> lint(String scrape) throws Exception {
        Process p = new ProcessBuilder("promtool", "check", "metrics")
                .redirectErrorStream(true)
                .start();
        try (var in = p.getOutputStream()) {
            in.write(scrape.getBytes(StandardCharsets.UTF_8));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        p.getInputStream().transferTo(out);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        List<String> problems = out.toString(StandardCharsets.UTF_8)
                .lines()
                .filter(l -> !l.isBlank())
                .toList();
        assertThat(p.exitValue() == 0)
                .as("promtool's exit status says what it printed: %s", problems)
                .isEqualTo(problems.isEmpty());
        return problems;
    }

    private static List<String> services() {
        return List.of(cluster.url(), cluster.prefillUrl(0), cluster.decodeUrl(0));
    }

    @Test
    void everyScrapeIsLintCleanAndCarriesVllmsMetrics() throws Exception {
        load();
        for (String url : services()) {
            assertThat(lint(LocalCluster.get(url + "/actuator/prometheus")))
                    .as("promtool on %s/actuator/prometheus", url)
                    .isEmpty();
            String metrics = LocalCluster.get(url + "/metrics");
            assertThat(lint(metrics))
                    .as("promtool on %s/metrics: vLLM's names (with ':') are all it may object to", url)
                    .allMatch(l -> l.startsWith("vllm:") && l.endsWith("metric names should not contain ':'"));
            Map<String, String> types = new LinkedHashMap<>();
            Matcher m = Pattern.compile("(?m)^# TYPE (\\S+) (\\S+)$").matcher(metrics);
            while (m.find()) types.put(m.group(1), m.group(2));
            VLLM.forEach((name, type) -> assertThat(types)
                    .as("%s/metrics declares %s as vLLM does", url, name)
                    .containsEntry(name, type));
            Matcher model = Pattern.compile("(?m)^vllm:num_requests_running\\{model_name=\"([^\"]+)\"} ")
                    .matcher(metrics);
            assertThat(model.find())
                    .as("the vLLM metrics carry the served model's name")
                    .isTrue();
            assertThat(metrics.lines().filter(l -> l.startsWith("mooncakej_")))
                    .as("the project's own metrics are there too, with the same model_name")
                    .isNotEmpty()
                    .allMatch(l -> l.contains("model_name=\"" + model.group(1) + "\""));
            HttpResponse<String> health = LeakCheckingClient.create()
                    .send(LocalCluster.request(url + "/health").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(health.statusCode()).as("%s/health", url).isEqualTo(200);
            assertThat(health.body()).isEmpty();
        }
        // what the conductor counted, as vLLM's tools read it: tokens in and out, prefix queries
        String conductor = LocalCluster.get(cluster.url() + "/metrics");
        assertThat(sample(conductor, "vllm:prompt_tokens_total")).isPositive();
        assertThat(sample(conductor, "vllm:generation_tokens_total")).isPositive();
        assertThat(sample(conductor, "vllm:prefix_cache_queries_total"))
                .isEqualTo(sample(conductor, "vllm:prompt_tokens_total"));
        assertThat(sample(conductor, "vllm:time_to_first_token_seconds_count")).isGreaterThanOrEqualTo(10);
        assertThat(sample(LocalCluster.get(cluster.decodeUrl(0) + "/metrics"), "vllm:generation_tokens_total"))
                .isPositive();
    }

    private static double sample(String metrics, String name) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "\\{[^}]*} (\\S+)$")
                .matcher(metrics);
        assertThat(m.find()).as("a sample of %s", name).isTrue();
        return Double.parseDouble(m.group(1));
    }

    @Test
    void everyDashboardAndAlertQueryEvaluatesNonEmptyAfterALoad() throws Exception {
        load();
        JsonNode dashboard = JSON.readTree(
                ROOT.resolve("docker/grafana/dashboards/mooncakej.json").toFile());
        List<String> names = new ArrayList<>();
        for (JsonNode v : dashboard.path("templating").path("list"))
            names.add(v.path("name").asString());
        assertThat(names).as("the dashboard's variables").contains("datasource", "instance");
        List<String> queries = new ArrayList<>();
        boolean tokensPerSecond = false;
        for (JsonNode panel : dashboard.path("panels")) {
            assertThat(panel.path("datasource").path("uid").asString())
                    .as("panel %s's data source", panel.path("title"))
                    .isEqualTo("${datasource}");
            for (JsonNode t : panel.path("targets")) {
                String expr = t.path("expr").asString();
                assertThat(expr)
                        .as("panel %s filters by instance", panel.path("title"))
                        .contains("$instance");
                queries.add(expr.replace("$instance", ".*"));
                tokensPerSecond |= expr.contains("vllm:generation_tokens_total");
            }
        }
        assertThat(tokensPerSecond).as("a tokens/s panel").isTrue();
        String rules = Files.readString(ROOT.resolve("docker/prometheus/alerts.yml"));
        Matcher m = Pattern.compile("(?m)^\\s+expr: (.+)$").matcher(rules);
        int alerts = 0;
        while (m.find()) { // the rule's quantity, without its threshold: it must exist where traffic ran
            queries.add(m.group(1).replaceFirst("\\s*(>|<|==|!=|>=|<=)\\s*[0-9.]+\\s*$", ""));
            alerts++;
        }
        assertThat(alerts).as("alert rules").isEqualTo(4);
        // a rate needs two scrapes since the load: on a busy machine a scrape can time out (its timeout is
        // the 2 s interval), so the queries are asked again until each has a result or a minute has passed
        List<String> empty = new ArrayList<>(queries);
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!empty.isEmpty() && System.nanoTime() < until) {
            Thread.sleep(1000);
            List<String> still = new ArrayList<>();
            for (String q : empty) {
                JsonNode r = JSON.readTree(LocalCluster.get(
                        prometheusUrl + "/api/v1/query?query=" + URLEncoder.encode(q, StandardCharsets.UTF_8)));
                assertThat(r.path("status").asString()).as("%s: %s", q, r).isEqualTo("success");
                if (r.path("data").path("result").isEmpty()) still.add(q);
            }
            empty = still;
        }
        assertThat(empty)
                .as("queries with no result a minute after the load (scrape targets: %s)", targets())
                .isEmpty();
        // the rules loaded and evaluate
        JsonNode groups = JSON.readTree(LocalCluster.get(prometheusUrl + "/api/v1/rules"))
                .path("data")
                .path("groups");
        List<String> health = new ArrayList<>();
        for (JsonNode g : groups)
            for (JsonNode rule : g.path("rules"))
                health.add(
                        rule.path("name").asString() + "=" + rule.path("health").asString());
        assertThat(health)
                .containsExactlyInAnyOrder(
                        "MooncakejRoutingDegraded=ok",
                        "MooncakejPredictionErrorHigh=ok",
                        "MooncakejKvPoolFull=ok",
                        "MooncakejWorkerMissing=ok");
    }

    /** Each scrape target's health and last error, as Prometheus reports them. */
    private static List<String> targets() throws Exception {
        List<String> out = new ArrayList<>();
        for (JsonNode t : JSON.readTree(LocalCluster.get(prometheusUrl + "/api/v1/targets"))
                .path("data")
                .path("activeTargets"))
            out.add(t.path("scrapeUrl").asString() + " " + t.path("health").asString() + " "
                    + t.path("lastError").asString());
        return out;
    }

    /** Twelve requests through the OpenAI SDK, a prompt repeated (prefix hits), some streamed. */
    private static void load() throws Exception {
        OpenAIClient openai = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("none")
                .build();
        for (int i = 0; i < 12; i++) {
            var params = CompletionCreateParams.builder()
                    .model("mooncakej-tiny")
                    .prompt(LocalCluster.story(i % 3))
                    .maxTokens(8)
                    .build();
            if (i % 3 == 0)
                try (var stream = openai.completions().createStreaming(params)) {
                    stream.stream().forEach(c -> {});
                }
            else assertThat(openai.completions().create(params).choices()).hasSize(1);
        }
    }
}
