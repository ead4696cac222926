package dev.mooncakej.web;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;
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
}
