package dev.mooncakej.web;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
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
 * {@code OTEL_SDK_DISABLED=true}, {@code OTEL_TRACES_EXPORTER=none} or
 * {@code OTEL_TRACES_SAMPLER=always_off} turn it off. On, every request is sampled unless
 * {@code OTEL_TRACES_SAMPLER} / {@code OTEL_TRACES_SAMPLER_ARG} or
 * {@code management.tracing.sampling.probability} say otherwise (the OpenTelemetry default, where
 * Spring Boot's is 10%); the sampler always follows a caller's sampled flag (parent-based). The
 * exporter's headers (a collector's API key), compression and timeout come from
 * {@code OTEL_EXPORTER_OTLP_[TRACES_]HEADERS}, {@code _COMPRESSION} and {@code _TIMEOUT};
 * {@code OTEL_SERVICE_NAME} and {@code OTEL_RESOURCE_ATTRIBUTES} are Spring Boot's own. A value this
 * build cannot honour (a gRPC or JSON protocol, another exporter or sampler, a malformed number or
 * header list) stops the service with a message naming the variable, never ignored. Off, no spans are
 * made at all ({@link Tracing#OFF}). What this sets are defaults: the service's own configuration wins.
 */
public final class TracingEnvironment implements EnvironmentPostProcessor {
    /** Whether this service traces (set here, read by {@link WebEdgeAutoConfiguration}). */
    public static final String ACTIVE = "mooncakej.tracing.active";

    /** Spring Boot's OTLP span exporter keys. */
    static final String OTLP = "management.opentelemetry.tracing.export.otlp.";

    static final String ENDPOINT = OTLP + "endpoint";
    static final String PROBABILITY = "management.tracing.sampling.probability";
    static final String SAMPLER = "OTEL_TRACES_SAMPLER";

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment env, SpringApplication application) {
        Map<String, Object> defaults = new HashMap<>();
        String endpoint = env.getProperty(ENDPOINT);
        if (blank(endpoint)) endpoint = env.getProperty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if (blank(endpoint)) {
            String base = env.getProperty("OTEL_EXPORTER_OTLP_ENDPOINT");
            if (!blank(base)) endpoint = base.replaceAll("/+$", "") + "/v1/traces";
        }
        String exporter = env.getProperty("OTEL_TRACES_EXPORTER");
        if (!blank(exporter) && !exporter.equalsIgnoreCase("otlp") && !exporter.equalsIgnoreCase("none"))
            throw refused("OTEL_TRACES_EXPORTER", exporter, "otlp or none");
        Double sampler = sampler(env);
        boolean off = blank(endpoint)
                || "true".equalsIgnoreCase(env.getProperty("OTEL_SDK_DISABLED"))
                || "none".equalsIgnoreCase(exporter)
                || "always_off".equalsIgnoreCase(env.getProperty(SAMPLER, "").trim());
        defaults.put(ACTIVE, !off);
        if (off) {
            defaults.put("management.tracing.export.enabled", false);
            defaults.put(PROBABILITY, 0.0);
        } else {
            defaults.put(ENDPOINT, endpoint);
            defaults.put(PROBABILITY, String.valueOf(sampler == null ? 1.0 : sampler));
            String protocol = otlp(env, "PROTOCOL");
            if (!blank(protocol) && !protocol.equals("http/protobuf"))
                throw refused(
                        otlpName(env, "PROTOCOL"),
                        protocol,
                        "http/protobuf (this build exports OTLP over HTTP: point the endpoint at the"
                                + " collector's OTLP/HTTP port, 4318 by default)");
            String compression = otlp(env, "COMPRESSION");
            if (!blank(compression)) {
                if (!compression.equals("gzip") && !compression.equals("none"))
                    throw refused(otlpName(env, "COMPRESSION"), compression, "gzip or none");
                defaults.put(OTLP + "compression", compression);
            }
            String timeout = otlp(env, "TIMEOUT");
            if (!blank(timeout)) {
                if (!timeout.matches("[0-9]{1,9}"))
                    throw refused(otlpName(env, "TIMEOUT"), timeout, "a whole number of milliseconds");
                defaults.put(OTLP + "timeout", timeout + "ms");
            }
            String headers = otlp(env, "HEADERS");
            if (!blank(headers)) headers(otlpName(env, "HEADERS"), headers, defaults);
        }
        env.getPropertySources().addLast(new MapPropertySource("mooncakej-tracing-defaults", defaults));
    }

    /**
     * The sampling probability {@code OTEL_TRACES_SAMPLER} and {@code OTEL_TRACES_SAMPLER_ARG} ask for,
     * or null when neither is set. The sampler here is Spring Boot's, parent-based: {@code always_on}
     * and {@code traceidratio} are taken as their parent-based forms (a caller's sampled flag is
     * followed), {@code always_off} turns tracing off.
     */
    private static Double sampler(ConfigurableEnvironment env) {
        String name = env.getProperty(SAMPLER);
        String arg = env.getProperty("OTEL_TRACES_SAMPLER_ARG");
        Double ratio = null;
        if (!blank(arg)) {
            try {
                ratio = Double.parseDouble(arg.trim());
            } catch (NumberFormatException e) {
                ratio = Double.NaN;
            }
            if (!(ratio >= 0 && ratio <= 1)) throw refused("OTEL_TRACES_SAMPLER_ARG", arg, "a number from 0 to 1");
        }
        if (blank(name)) return ratio;
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "always_on", "parentbased_always_on" -> 1.0;
            case "always_off", "parentbased_always_off" -> 0.0;
            case "traceidratio", "parentbased_traceidratio" -> ratio == null ? 1.0 : ratio;
            default ->
                throw refused(
                        SAMPLER,
                        name,
                        "always_on, always_off, traceidratio or their parentbased_ forms (this build's sampler"
                                + " is Spring Boot's probability sampler)");
        };
    }

    /**
     * An OTLP exporter variable, trimmed (and lower-cased but for the headers): the traces-specific one
     * ({@code OTEL_EXPORTER_OTLP_TRACES_<x>}) first.
     */
    private static String otlp(ConfigurableEnvironment env, String what) {
        String v = env.getProperty(otlpName(env, what));
        if (v == null) return null;
        return what.equals("HEADERS") ? v.trim() : v.trim().toLowerCase(Locale.ROOT);
    }

    private static String otlpName(ConfigurableEnvironment env, String what) {
        String traces = "OTEL_EXPORTER_OTLP_TRACES_" + what;
        return blank(env.getProperty(traces)) ? "OTEL_EXPORTER_OTLP_" + what : traces;
    }

    /**
     * The exporter's headers from the OpenTelemetry form {@code key=value,key2=value2} (values
     * percent-encoded), as Spring Boot's header map. A malformed entry stops the service, named by its
     * key or position; a value is never printed (it is usually a credential).
     */
    private static void headers(String variable, String list, Map<String, Object> into) {
        String[] entries = list.split(",");
        for (int i = 0; i < entries.length; i++) {
            String entry = entries[i].trim();
            if (entry.isEmpty()) continue;
            int eq = entry.indexOf('=');
            String key = eq < 0 ? "" : entry.substring(0, eq).trim();
            if (eq < 0 || !key.matches("[!#$%&'*+.^_`|~0-9A-Za-z-]+"))
                throw new IllegalArgumentException(variable + ": entry " + (i + 1)
                        + " is not key=value with a header name as key; expected key=value pairs separated by"
                        + " commas, values percent-encoded");
            String value;
            try {
                value = URLDecoder.decode(entry.substring(eq + 1).trim().replace("+", "%2B"), StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(variable + ": the value of " + key
                        + " is not percent-encoded correctly (a '%' must be followed by two hex digits)");
            }
            into.put(OTLP + "headers[" + key + "]", value);
        }
    }

    private static IllegalArgumentException refused(String variable, String value, String expected) {
        return new IllegalArgumentException(variable + "=" + value + ": expected " + expected);
    }

    private static boolean blank(String s) {
        return s == null || s.isBlank();
    }
}
