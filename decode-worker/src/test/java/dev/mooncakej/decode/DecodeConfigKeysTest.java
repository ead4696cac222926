package dev.mooncakej.decode;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * Every {@code mooncakej.decode.*} key with a bad value fails the binding Spring does at start-up,
 * with a message naming the key (ours, or Spring's for a value of the wrong type).
 */
class DecodeConfigKeysTest {
    @TempDir
    static Path dir;

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "model|/no/such.gguf|mooncakej.decode.model=/no/such.gguf",
                "block-tokens|0|mooncakej.decode.block-tokens=0",
                "block-tokens|many|mooncakej.decode.block-tokens",
                "kv-blocks|-1|mooncakej.decode.kv-blocks=-1",
                "max-batch|0|mooncakej.decode.max-batch=0",
                "threads|0|mooncakej.decode.threads=0",
                "kv-host|bad host!|mooncakej.decode.kv-host=bad host!",
                "kv-port|70000|mooncakej.decode.kv-port=70000",
                "kv-wait-millis|0|mooncakej.decode.kv-wait-millis=0",
                "kv-secret|short|mooncakej.decode.kv-secret",
                "kv-transports|tcp,carrier-pigeon|mooncakej.decode.kv-transports=tcp,carrier-pigeon",
                "kv-transports|shm|expected tcp among them",
                "kv-shm-dir|/no/such/dir|mooncakej.decode.kv-shm-dir=/no/such/dir",
                "engine|gpu|mooncakej.decode.engine=gpu",
                "sim-profile|h100|mooncakej.decode.sim-profile=h100",
                "sim-time-scale|-1|mooncakej.decode.sim-time-scale=-1",
                "kv-timeout-millis|0|mooncakej.decode.kv-timeout-millis=0",
                "conductor-url|localhost:8000|mooncakej.decode.conductor-url=localhost:8000",
            })
    void aBadValueNamesItsKey(String key, String value, String expected) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        Map<String, String> props = new HashMap<>(Map.of(
                "mooncakej.decode.model", model.toString(), "mooncakej.decode.kv-secret", "0123456789abcdef0123"));
        props.put("mooncakej.decode." + key, value);
        String message = bind(props);
        assertThat(message).as("binding %s=%s", key, value).isNotNull().contains(expected);
    }

    @Test
    void defaultsBind() throws Exception {
        Path model = Files.writeString(dir.resolve("ok.gguf"), "x");
        assertThat(bind(Map.of(
                        "mooncakej.decode.model",
                        model.toString(),
                        "mooncakej.decode.kv-secret",
                        "0123456789abcdef0123")))
                .isNull();
        assertThat(bind(Map.of("mooncakej.decode.kv-secret", "0123456789abcdef0123")))
                .contains("mooncakej.decode.model is missing");
    }

    private static String bind(Map<String, String> props) {
        try {
            new Binder(new MapConfigurationPropertySource(props)).bind("mooncakej.decode", DecodeProperties.class);
            return null;
        } catch (BindException e) {
            StringBuilder sb = new StringBuilder(e.getMessage());
            for (Throwable c = e.getCause(); c != null; c = c.getCause())
                sb.append(" / ").append(c.getMessage());
            return sb.toString();
        }
    }
}
