package dev.mooncakej.prefill;

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
 * Every {@code mooncakej.prefill.*} key with a bad value fails the binding Spring does at start-up,
 * with a message naming the key (ours, or Spring's for a value of the wrong type).
 */
class PrefillConfigKeysTest {
    @TempDir
    static Path dir;

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(
            delimiter = '|',
            value = {
                "model|/no/such.gguf|mooncakej.prefill.model=/no/such.gguf",
                "block-tokens|0|mooncakej.prefill.block-tokens=0",
                "block-tokens|many|mooncakej.prefill.block-tokens",
                "kv-blocks|-1|mooncakej.prefill.kv-blocks=-1",
                "chunk-tokens|0|mooncakej.prefill.chunk-tokens=0",
                "threads|0|mooncakej.prefill.threads=0",
                "kv-host|bad host!|mooncakej.prefill.kv-host=bad host!",
                "kv-port|70000|mooncakej.prefill.kv-port=70000",
                "kv-secret|short|mooncakej.prefill.kv-secret",
                "kv-transports|tcp,carrier-pigeon|mooncakej.prefill.kv-transports=tcp,carrier-pigeon",
                "kv-transports|shm|expected tcp among them",
                "kv-shm-dir|/no/such/dir|mooncakej.prefill.kv-shm-dir=/no/such/dir",
                "engine|gpu|mooncakej.prefill.engine=gpu",
                "sim-profile|h100|mooncakej.prefill.sim-profile=h100",
                "sim-time-scale|-1|mooncakej.prefill.sim-time-scale=-1",
                "conductor-url|localhost:8000|mooncakej.prefill.conductor-url=localhost:8000",
                "kv-timeout-millis|0|mooncakej.prefill.kv-timeout-millis=0",
            })
    void aBadValueNamesItsKey(String key, String value, String expected) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        Map<String, String> props = new HashMap<>(Map.of(
                "mooncakej.prefill.model", model.toString(), "mooncakej.prefill.kv-secret", "0123456789abcdef0123"));
        props.put("mooncakej.prefill." + key, value);
        String message = bind(props);
        assertThat(message).as("binding %s=%s", key, value).isNotNull().contains(expected);
    }

    @Test
    void defaultsBind() throws Exception {
        Path model = Files.writeString(dir.resolve("ok.gguf"), "x");
        assertThat(bind(Map.of(
                        "mooncakej.prefill.model",
                        model.toString(),
                        "mooncakej.prefill.kv-secret",
                        "0123456789abcdef0123")))
                .isNull();
        assertThat(bind(Map.of("mooncakej.prefill.kv-secret", "0123456789abcdef0123")))
                .contains("mooncakej.prefill.model is missing");
    }

    private static String bind(Map<String, String> props) {
        try {
            new Binder(new MapConfigurationPropertySource(props)).bind("mooncakej.prefill", PrefillProperties.class);
            return null;
        } catch (BindException e) {
            StringBuilder sb = new StringBuilder(e.getMessage());
            for (Throwable c = e.getCause(); c != null; c = c.getCause())
                sb.append(" / ").append(c.getMessage());
            return sb.toString();
        }
    }
}
