package dev.mooncakej.web;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.core.env.MapPropertySource;
import org.springframework.core.env.StandardEnvironment;

/** Tracing is off unless an OTLP endpoint is configured; the standard OTEL_* variables configure it. */
class TracingEnvironmentTest {
    private static StandardEnvironment env(Map<String, Object> given) {
        StandardEnvironment env = new StandardEnvironment();
        env.getPropertySources().addFirst(new MapPropertySource("given", given));
        new TracingEnvironment().postProcessEnvironment(env, null);
        return env;
    }

    @Test
    void offWithoutAnEndpoint() {
        StandardEnvironment env = env(Map.of());
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("false");
        assertThat(env.getProperty("management.tracing.sampling.probability")).isEqualTo("0.0");
        assertThat(env.getProperty("management.tracing.export.enabled")).isEqualTo("false");
    }

    @Test
    void theStandardVariablesTurnItOnAtFullSampling() {
        StandardEnvironment env = env(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"));
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("true");
        assertThat(env.getProperty(TracingEnvironment.ENDPOINT)).isEqualTo("http://collector:4318/v1/traces");
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("1.0");

        env = env(Map.of(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/traces",
                "OTEL_TRACES_SAMPLER_ARG",
                "0.25"));
        assertThat(env.getProperty(TracingEnvironment.ENDPOINT)).isEqualTo("http://collector:4318/traces");
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("0.25");
    }

    @Test
    void springBootsKeysWinAndTheSdkCanBeDisabled() {
        StandardEnvironment env = env(Map.of(
                TracingEnvironment.ENDPOINT,
                "http://mine:4318/v1/traces",
                TracingEnvironment.PROBABILITY,
                "0.5",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://other:4318"));
        assertThat(env.getProperty(TracingEnvironment.ENDPOINT)).isEqualTo("http://mine:4318/v1/traces");
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("0.5");
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("true");

        env = env(Map.of("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_SDK_DISABLED", "true"));
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("false");
    }

    @Test
    void theExportersHeadersCompressionAndTimeoutComeFromTheStandardVariables() {
        StandardEnvironment env = env(Map.of(
                "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318",
                "OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt+1, x-team = blue",
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP",
                "OTEL_EXPORTER_OTLP_TIMEOUT", "2500",
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
        // bound as Spring Boot's exporter binds them
        Map<String, String> headers = Binder.get(env)
                .bind(TracingEnvironment.OTLP + "headers", Bindable.mapOf(String.class, String.class))
                .get();
        assertThat(headers).containsExactlyInAnyOrderEntriesOf(Map.of("api-key", "s3cr=t+1", "x-team", "blue"));
        assertThat(env.getProperty(TracingEnvironment.OTLP + "compression")).isEqualTo("gzip");
        assertThat(Binder.get(env)
                        .bind(TracingEnvironment.OTLP + "timeout", Duration.class)
                        .get())
                .isEqualTo(Duration.ofMillis(2500));
    }

    @Test
    void whatThisBuildCannotHonourIsRefusedByName() {
        String endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", at = "http://collector:4318";
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")))
                .hasMessageContaining("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc")
                .hasMessageContaining("http/protobuf")
                .hasMessageContaining("4318");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_TRACES_EXPORTER", "zipkin")))
                .hasMessageContaining("OTEL_TRACES_EXPORTER=zipkin: expected otlp or none");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_TRACES_SAMPLER", "jaeger_remote")))
                .hasMessageContaining("OTEL_TRACES_SAMPLER=jaeger_remote");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_TRACES_SAMPLER_ARG", "1.5")))
                .hasMessageContaining("OTEL_TRACES_SAMPLER_ARG=1.5: expected a number from 0 to 1");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")))
                .hasMessageContaining("OTEL_EXPORTER_OTLP_COMPRESSION=zstd: expected gzip or none");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_EXPORTER_OTLP_TIMEOUT", "10s")))
                .hasMessageContaining("OTEL_EXPORTER_OTLP_TIMEOUT=10s");
        // a malformed header list is named by position, its values (credentials) never printed
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_EXPORTER_OTLP_HEADERS", "a=1,t0psecret")))
                .hasMessageContaining("OTEL_EXPORTER_OTLP_HEADERS: entry 2")
                .hasMessageNotContaining("t0psecret");
        assertThatThrownBy(() -> env(Map.of(endpoint, at, "OTEL_EXPORTER_OTLP_HEADERS", "key=t0p%zz")))
                .hasMessageContaining("the value of key")
                .hasMessageNotContaining("t0p");
    }

    @Test
    void theStandardSamplersMapOntoTheProbability() {
        String endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", at = "http://collector:4318";
        StandardEnvironment env = env(Map.of(endpoint, at, "OTEL_TRACES_SAMPLER", "always_off"));
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("false");
        env = env(Map.of(
                endpoint, at, "OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.1"));
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("0.1");
        env = env(Map.of(endpoint, at, "OTEL_TRACES_SAMPLER", "parentbased_always_off"));
        assertThat(env.getProperty(TracingEnvironment.ACTIVE)).isEqualTo("true"); // a caller's sampled flag rules
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("0.0");
        env = env(Map.of(endpoint, at, "OTEL_TRACES_SAMPLER", "always_on", "OTEL_TRACES_SAMPLER_ARG", "0.3"));
        assertThat(env.getProperty(TracingEnvironment.PROBABILITY)).isEqualTo("1.0");
    }
}
