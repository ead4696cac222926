package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.assertj.core.api.Assertions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.builder.SpringApplicationBuilder;

/**
 * The resilience4j.* keys the conductor documents: a bad value stops the conductor's start-up with
 * Resilience4j's message naming the setting (the whole application is started, as a user would).
 */
class ResilienceConfigTest {
    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "resilience4j.circuitbreaker.configs.default.failure-rate-threshold|150|failureRateThreshold",
                "resilience4j.circuitbreaker.configs.default.sliding-window-size|0|slidingWindowSize",
                "resilience4j.circuitbreaker.configs.default.wait-duration-in-open-state|-1s|waitDurationInOpenState",
                "resilience4j.retry.configs.default.max-attempts|0|maxAttempts",
            })
    void aBadValueStopsStartUp(String key, String value, String named) throws Exception {
        String model = ConductorFixtures.model().toString();
        assertThatThrownBy(() -> new SpringApplicationBuilder(ConductorApplication.class)
                        .run(
                                "--server.port=0",
                                "--mooncakej.conductor.model=" + model,
                                "--mooncakej.conductor.prefill-workers=http://127.0.0.1:1",
                                "--mooncakej.conductor.decode-workers=http://127.0.0.1:2",
                                "--" + key + "=" + value)
                        .close())
                .satisfies(e -> {
                    StringBuilder all = new StringBuilder();
                    for (Throwable c = e; c != null; c = c.getCause())
                        all.append(c.getMessage()).append(" / ");
                    Assertions.assertThat(all.toString())
                            .as("start-up failure for %s=%s", key, value)
                            .containsIgnoringCase(named);
                });
    }
}
