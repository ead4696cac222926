package dev.mooncakej.web;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.Arrays;
import java.util.function.DoubleSupplier;

/**
 * The serving metrics tools built for vLLM read (production-stack's router, llm-d's model-server
 * protocol, the vLLM Grafana dashboards), under vLLM's names and types with its {@code model_name}
 * label, served on {@code /metrics} beside the project's own (docs/operations.md, "Metrics"). They
 * live in a registry of their own: vLLM's names contain ':', which Prometheus's lint reserves for
 * recording rules, so {@code /actuator/prometheus} stays lint-clean without them. Each service records
 * what it sees: the conductor the client's view (TTFT, inter-token latency, end to end, tokens, prefix
 * hits, requests waiting for their first token and running), a prefill worker its queue, prompt tokens
 * and prefix cache, a decode worker its batch, generated tokens, step times and KV use.
 */
public final class VllmMetrics {
    /** vLLM's bucket bounds, seconds. */
    private static final double[] TTFT_BUCKETS = {
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
        160.0, 640.0, 2560.0
    };

    private static final double[] ITL_BUCKETS = {
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0
    };
    private static final double[] E2E_BUCKETS = {
        0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
        1920.0, 7680.0
    };

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final Tags model;
    public final Timer ttft, itl, e2e;
    public final Counter promptTokens, generationTokens, prefixQueries, prefixHits;

    /**
     * The metrics of a service serving {@code modelName}: {@code running}, {@code waiting} (requests)
     * and {@code kvUsage} (0..1) are read at each scrape.
     */
    public VllmMetrics(String modelName, DoubleSupplier running, DoubleSupplier waiting, DoubleSupplier kvUsage) {
        this.model = Tags.of("model_name", modelName);
        ttft = timer("vllm:time_to_first_token", "Histogram of time to first token in seconds.", TTFT_BUCKETS);
        itl = timer("vllm:inter_token_latency", "Histogram of inter-token latency in seconds.", ITL_BUCKETS);
        e2e = timer("vllm:e2e_request_latency", "Histogram of e2e request latency in seconds.", E2E_BUCKETS);
        promptTokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.");
        generationTokens = counter("vllm:generation_tokens", "Number of generation tokens processed.");
        prefixQueries =
                counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.");
        prefixHits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.");
        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running);
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting);
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kvUsage);
    }

    /**
     * The filter that gives every meter of a service's own registry the {@code model_name} label these
     * metrics carry, so the project's {@code mooncakej_*} metrics group by model as vLLM's do. A
     * service registers it as a bean made from its loaded model, which Spring Boot applies to the
     * registry before any meter is registered.
     */
    public static MeterFilter modelNameTag(String modelName) {
        return MeterFilter.commonTags(Tags.of("model_name", modelName));
    }

    /** These metrics in the Prometheus text format. */
    public String scrape() {
        return registry.scrape();
    }

    private Timer timer(String name, String help, double[] buckets) {
        return Timer.builder(name)
                .description(help)
                .tags(model)
                .serviceLevelObjectives(Arrays.stream(buckets)
                        .mapToObj(s -> Duration.ofNanos((long) (s * 1e9)))
                        .toArray(Duration[]::new))
                .register(registry);
    }

    private Counter counter(String name, String help) {
        return Counter.builder(name).description(help).tags(model).register(registry);
    }

    private void gauge(String name, String help, DoubleSupplier value) {
        Gauge.builder(name, value, DoubleSupplier::getAsDouble)
                .description(help)
                .tags(model)
                .register(registry);
    }
}
