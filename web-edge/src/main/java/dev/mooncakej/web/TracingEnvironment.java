package dev.mooncakej.web;

import java.util.HashMap;
import java.util.Map;
import org.springframework.boot.EnvironmentPostProcessor;
import org.springframework.boot.SpringApplication;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * Tracing is off unless an OTLP endpoint is configured, by Spring Boot's key
 * {@code management.opentelemetry.tracing.export.otlp.endpoint} or by the standard OpenTelemetry
 * variables {@code OTEL_EXPORTER_OTLP_TRACES_ENDPOINT} (used as is) or
 * {@code OTEL_EXPORTER_OTLP_ENDPOINT} ({@code /v1/traces} appended, OTLP over HTTP);
 * {@code OTEL_SDK_DISABLED=true} or {@code OTEL_TRACES_EXPORTER=none} turn it off. On, every request
 * is sampled unless {@code OTEL_TRACES_SAMPLER_ARG} or {@code management.tracing.sampling.probability}
 * says otherwise (the OpenTelemetry default, where Spring Boot's is 10%); a client's sampled
 * {@code traceparent} is followed either way. Off, no spans are made at all ({@link Tracing#OFF}).
 * What this sets are defaults: the service's own configuration wins.
 */
public final class TracingEnvironment implements EnvironmentPostProcessor {
    /** Whether this service traces (set here, read by {@link WebEdgeAutoConfiguration}). */
    public static final String ACTIVE = "mooncakej.tracing.active";

    static final String ENDPOINT = "management.opentelemetry.tracing.export.otlp.endpoint";
    static final String PROBABILITY = "management.tracing.sampling.probability";

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment env, SpringApplication application) {
        Map<String, Object> defaults = new HashMap<>();
        String endpoint = env.getProperty(ENDPOINT);
        if (blank(endpoint)) endpoint = env.getProperty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if (blank(endpoint)) {
            String base = env.getProperty("OTEL_EXPORTER_OTLP_ENDPOINT");
            if (!blank(base)) endpoint = base.replaceAll("/+$", "") + "/v1/traces";
        }
        boolean off = blank(endpoint)
                || "true".equalsIgnoreCase(env.getProperty("OTEL_SDK_DISABLED"))
                || "none".equalsIgnoreCase(env.getProperty("OTEL_TRACES_EXPORTER"));
        defaults.put(ACTIVE, !off);
        if (off) {
            defaults.put("management.tracing.export.enabled", false);
            defaults.put(PROBABILITY, 0.0);
        } else {
            defaults.put(ENDPOINT, endpoint);
            String arg = env.getProperty("OTEL_TRACES_SAMPLER_ARG");
            defaults.put(PROBABILITY, blank(arg) ? "1.0" : arg);
        }
        env.getPropertySources().addLast(new MapPropertySource("mooncakej-tracing-defaults", defaults));
    }

    private static boolean blank(String s) {
        return s == null || s.isBlank();
    }
}
