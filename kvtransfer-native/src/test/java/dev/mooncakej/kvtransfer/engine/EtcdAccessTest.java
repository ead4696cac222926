package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The etcd access settings are checked before any connection: each bad combination names its key. */
class EtcdAccessTest {
    @Test
    void badSettingsNameTheKey(@TempDir Path dir) throws Exception {
        Path ca = Files.writeString(dir.resolve("ca.crt"), "x");
        assertThatThrownBy(() -> EtcdAccess.plain(List.of("etcd:2379")))
                .hasMessageContaining("'etcd:2379'")
                .hasMessageContaining("expected http://host:port");
        assertThatThrownBy(() -> EtcdAccess.plain(List.of("https://e:2379")))
                .hasMessageContaining("mooncakej.cluster.etcd-ca-file is not set");
        assertThatThrownBy(() -> new EtcdAccess(List.of("http://e:2379"), null, null, ca, null, null))
                .hasMessageContaining("are http://");
        assertThatThrownBy(() -> new EtcdAccess(List.of("https://a:1", "http://b:2"), null, null, ca, null, null))
                .hasMessageContaining("one scheme");
        assertThatThrownBy(() -> new EtcdAccess(List.of("https://e:2379"), null, null, ca, ca, null))
                .hasMessageContaining("expected both");
        assertThatThrownBy(() ->
                        new EtcdAccess(List.of("https://e:2379"), null, null, dir.resolve("missing.crt"), null, null))
                .hasMessageContaining("missing.crt")
                .hasMessageContaining("cannot be read");
        assertThatThrownBy(() -> new EtcdAccess(List.of("http://e:2379"), "svc", null, null, null, null))
                .hasMessageContaining("etcd-user and its password");
        // a PEM that is not one: a clear error when the client is built, not a stack trace from gRPC
        assertThatThrownBy(() -> new EtcdAccess(List.of("https://e:2379"), null, null, ca, null, null).client())
                .hasMessageContaining("not usable");
    }

    @Test
    void thePasswordNeverShowsInToString() {
        EtcdAccess a = new EtcdAccess(List.of("http://e:2379"), "svc", "hunter2-secret", null, null, null);
        assertThat(a.toString()).contains("svc").doesNotContain("hunter2");
        assertThat(a.tls()).isFalse();
    }
}
