package dev.mooncakej.worker;

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
 * Every key both workers take, with a bad value, fails start-up with a message naming it under the
 * worker's own prefix (ours, or Spring's for a value of the wrong type), bound the way the apps bind
 * it; unset keys take their defaults; the secret never reaches a record's text.
 */
class WorkerKeysTest {
    private static final String SECRET = "0123456789abcdef0123";

    @TempDir
    static Path dir;

    private static WorkerSettings settings(String role, Map<String, String> props) {
        String prefix = "mooncakej." + role;
        return WorkerSettings.of(
                prefix + ".",
                new Binder(new MapConfigurationPropertySource(props)).bindOrCreate(prefix, WorkerKeys.class));
    }

    private static Map<String, String> minimal(String role) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        return new HashMap<>(
                Map.of("mooncakej." + role + ".model", model.toString(), "mooncakej." + role + ".kv-secret", SECRET));
    }

    @ParameterizedTest(name = "{0}: {1}={2}")
    @CsvSource(
            delimiter = '|',
            value = {
                "prefill|model|/no/such.gguf|model=/no/such.gguf",
                "decode|block-tokens|0|block-tokens=0",
                "prefill|block-tokens|many|block-tokens",
                "decode|kv-blocks|-1|kv-blocks=-1",
                "prefill|threads|0|threads=0",
                "decode|kv-host|bad host!|kv-host=bad host!",
                "prefill|kv-port|70000|kv-port=70000",
                "decode|kv-secret|short|kv-secret",
                "prefill|kv-transports|tcp,carrier-pigeon|kv-transports=tcp,carrier-pigeon",
                "decode|kv-transports|shm|kv-transports=shm: expected tcp among them",
                "prefill|kv-shm-dir|/no/such/dir|kv-shm-dir=/no/such/dir",
                "decode|engine|gpu|engine=gpu",
                "prefill|sim-profile|h100|sim-profile=h100",
                "decode|sim-time-scale|-1|sim-time-scale=-1",
                "prefill|conductor-url|localhost:8000|conductor-url=localhost:8000",
                "decode|kv-timeout-millis|0|kv-timeout-millis=0",
                "prefill|calibration-seconds|99|calibration-seconds=99",
                "decode|kv-rdma.port|0|kv-rdma.port",
            })
    void aBadValueNamesItsKeyUnderTheWorkersPrefix(String role, String key, String value, String expected)
            throws Exception {
        Map<String, String> props = minimal(role);
        props.put("mooncakej." + role + "." + key, value);
        assertThatThrownBy(() -> settings(role, props))
                .as("%s: %s=%s", role, key, value)
                .hasStackTraceContaining("mooncakej." + role + "." + expected);
    }

    @Test
    void unsetKeysTakeTheirDefaultsAndAMissingModelIsNamed() throws Exception {
        WorkerSettings s = settings("decode", minimal("decode"));
        assertThat(s.kvTimeoutMillis()).isEqualTo(WorkerSettings.DEFAULT_KV_TIMEOUT_MILLIS);
        assertThat(s.keys().kvTransports()).isEqualTo("rdma,shm,tcp");
        assertThat(s.keys().kvHost()).isEqualTo("127.0.0.1");
        assertThat(s.calibrationSeconds()).isEqualTo(3.0);
        assertThat(s.transferConfig().timeout().toMillis()).isEqualTo(30_000);
        assertThatThrownBy(() -> settings("prefill", Map.of("mooncakej.prefill.kv-secret", SECRET)))
                .hasMessageContaining("mooncakej.prefill.model is missing");
    }

    @Test
    void keysBindRelaxedAndReachTheTransferAndEngineSettings() throws Exception {
        Map<String, String> props = minimal("prefill");
        props.put("mooncakej.prefill.kvTimeoutMillis", "1234"); // camel case, as an env var maps to
        props.put("mooncakej.prefill.kv-transports", "shm,tcp");
        props.put("mooncakej.prefill.engine", "simulated");
        props.put("mooncakej.prefill.block-tokens", "32");
        WorkerSettings s = settings("prefill", props);
        assertThat(s.transferConfig().timeout().toMillis()).isEqualTo(1234);
        assertThat(s.transferConfig().transports()).containsExactly("shm", "tcp");
        assertThat(s.engineSettings(64).kind()).isEqualTo("simulated");
        assertThat(s.engineSettings(64).maxRows()).isEqualTo(64);
        assertThat(s.engineSettings(64).blockTokens()).isEqualTo(32);
        assertThat(s.engineSettings(64).keyPrefix()).isEqualTo("mooncakej.prefill.");
    }

    @Test
    void theSecretStaysOutOfTheRecordsText() throws Exception {
        Map<String, String> props = minimal("decode");
        assertThat(settings("decode", props).toString()).doesNotContain(SECRET).contains("kvSecret=[redacted]");
        assertThat(new Binder(new MapConfigurationPropertySource(props))
                        .bindOrCreate("mooncakej.decode", WorkerKeys.class)
                        .toString())
                .doesNotContain(SECRET);
    }
}
