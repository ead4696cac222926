package dev.mooncakej.decode;

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
 * The decode worker's start-up binding: its own keys ({@code max-batch}, {@code kv-wait-millis}, {@code
 * fence-deadline-millis}) and, through {@link
 * DecodeWorkerConfig}, the keys both workers take (each checked in worker-runtime's WorkerKeysTest)
 * under {@code mooncakej.decode.}; a bad value is named with its key.
 */
class DecodeConfigKeysTest {
    @TempDir
    static Path dir;

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "max-batch|0|mooncakej.decode.max-batch=0",
                "max-batch|2000|mooncakej.decode.max-batch=2000",
                "max-batch|many|mooncakej.decode.max-batch",
                "kv-wait-millis|0|mooncakej.decode.kv-wait-millis=0",
                "fence-deadline-millis|50|mooncakej.decode.fence-deadline-millis=50",
                "kv-timeout-millis|0|mooncakej.decode.kv-timeout-millis=0",
                "model|/no/such.gguf|mooncakej.decode.model=/no/such.gguf",
            })
    void aBadValueNamesItsKey(String key, String value, String expected) throws Exception {
        Binder binder = binder(key, value);
        assertThatThrownBy(() -> {
                    binder.bindOrCreate(DecodeProperties.PREFIX, DecodeProperties.class);
                    DecodeWorkerConfig.settings(binder);
                })
                .as("binding %s=%s", key, value)
                .hasStackTraceContaining(expected);
    }

    @Test
    void defaultsBind() throws Exception {
        Binder binder = binder("engine", "simulated");
        DecodeProperties own = binder.bindOrCreate(DecodeProperties.PREFIX, DecodeProperties.class);
        assertThat(own.maxBatch()).isEqualTo(32);
        assertThat(own.fenceDeadlineMillis()).isEqualTo(30_000);
        assertThat(DecodeWorkerConfig.settings(binder).prefix()).isEqualTo("mooncakej.decode.");
    }

    private static Binder binder(String key, String value) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        Map<String, String> props = new HashMap<>(Map.of(
                "mooncakej.decode.model", model.toString(), "mooncakej.decode.kv-secret", "0123456789abcdef0123"));
        props.put("mooncakej.decode." + key, value);
        return new Binder(new MapConfigurationPropertySource(props));
    }
}
