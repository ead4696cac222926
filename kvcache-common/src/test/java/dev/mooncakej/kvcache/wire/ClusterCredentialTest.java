package dev.mooncakej.kvcache.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The internal plane's credential: derived, never the secret, compared whole, never printed. */
class ClusterCredentialTest {
    @TempDir
    Path dir;

    @Test
    void itIsAnHmacOfAFixedLabelAndOnlyTheSameSecretMatches() {
        ClusterCredential c = ClusterCredential.of("0123456789abcdef");
        // HMAC-SHA256(key "0123456789abcdef", "mooncakej internal plane v1"), base64url without padding
        assertThat(c.value()).hasSize(43).doesNotContain("0123456789abcdef");
        assertThat(c.accepts(ClusterCredential.of("0123456789abcdef").value())).isTrue();
        assertThat(c.accepts(ClusterCredential.of("0123456789abcdeF").value())).isFalse();
        assertThat(c.accepts(c.value().substring(1))).isFalse();
        assertThat(c.accepts(null)).isFalse();
        assertThat(c.toString()).doesNotContain(c.value()).contains("redacted");
    }

    @Test
    void theSecretComesFromTheEnvironmentOrAFileAndItsAbsenceIsNamed() throws Exception {
        assertThatThrownBy(() -> ClusterCredential.fromSettings(k -> null))
                .hasMessageContaining("mooncakej.cluster.secret is missing")
                .hasMessageContaining("MOONCAKEJ_CLUSTER_SECRET");
        assertThatThrownBy(() -> ClusterCredential.fromSettings(Map.of("mooncakej.cluster.secret", "short")::get))
                .hasMessageContaining("shorter than 16")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("short\""));
        Path f = Files.writeString(dir.resolve("secret"), "from-a-mounted-secret-file\n");
        ClusterCredential fromFile =
                ClusterCredential.fromSettings(Map.of(
                        "mooncakej.cluster.secret-file",
                        f.toString(),
                        "mooncakej.cluster.secret",
                        "ignored-because-file")::get);
        assertThat(fromFile.value())
                .isEqualTo(ClusterCredential.of("from-a-mounted-secret-file").value());
        assertThatThrownBy(() -> ClusterCredential.fromSettings(Map.of(
                        "mooncakej.cluster.secret-file", dir.resolve("nope").toString())::get))
                .hasMessageContaining("mooncakej.cluster.secret-file=");
    }
}
