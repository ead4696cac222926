package dev.mooncakej.prefill;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * The prefill worker's start-up binding: its own key ({@code chunk-tokens}) and, through {@link
 * PrefillWorkerConfig}, the keys both workers take (each checked in worker-runtime's WorkerKeysTest)
 * under {@code mooncakej.prefill.}; a bad value is named with its key.
 */
class PrefillConfigKeysTest {
    @TempDir
    static Path dir;

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "chunk-tokens|0|mooncakej.prefill.chunk-tokens=0",
                "chunk-tokens|9000|mooncakej.prefill.chunk-tokens=9000",
                "chunk-tokens|many|mooncakej.prefill.chunk-tokens",
                "kv-timeout-millis|0|mooncakej.prefill.kv-timeout-millis=0",
                "model|/no/such.gguf|mooncakej.prefill.model=/no/such.gguf",
            })
    void aBadValueNamesItsKey(String key, String value, String expected) throws Exception {
        Binder binder = binder(key, value);
        assertThatThrownBy(() -> {
                    binder.bindOrCreate(PrefillProperties.PREFIX, PrefillProperties.class);
                    PrefillWorkerConfig.settings(binder);
                })
                .as("binding %s=%s", key, value)
                .hasStackTraceContaining(expected);
    }

    @Test
    void defaultsBind() throws Exception {
        Binder binder = binder("engine", "simulated");
        assertThat(binder.bindOrCreate(PrefillProperties.PREFIX, PrefillProperties.class)
                        .chunkTokens())
                .isEqualTo(256);
        assertThat(PrefillWorkerConfig.settings(binder).prefix()).isEqualTo("mooncakej.prefill.");
    }

    private static Binder binder(String key, String value) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        Map<String, String> props = new HashMap<>(Map.of(
                "mooncakej.prefill.model", model.toString(), "mooncakej.prefill.kv-secret", "0123456789abcdef0123"));
        props.put("mooncakej.prefill." + key, value);
        return new Binder(new MapConfigurationPropertySource(props));
    }
}
