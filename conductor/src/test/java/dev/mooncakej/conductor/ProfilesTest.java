package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.cluster.ClusterSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.env.YamlPropertySourceLoader;
import org.springframework.core.env.MapPropertySource;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.io.FileSystemResource;

/**
 * The deployment profiles in config/ bind: each file is loaded as Spring loads it, with the
 * environment variables it documents, and the conductor's and the cluster's settings come out as the
 * file says (the worker sections are bound by the same records in their modules' config-key tests).
 */
class ProfilesTest {
    @ParameterizedTest
    @ValueSource(strings = {"single-host", "cluster", "kubernetes"})
    void eachProfileBinds(String profile) throws Exception {
        Path root = Path.of("").toAbsolutePath();
        while (!root.resolve("config").toFile().isDirectory()) root = root.getParent();
        StandardEnvironment env = new StandardEnvironment();
        String model = ConductorFixtures.model().toString();
        env.getPropertySources()
                .addFirst(new MapPropertySource(
                        "documented-env",
                        Map.of(
                                "MOONCAKEJ_MODEL",
                                model,
                                "MOONCAKEJ_KV_SECRET",
                                "0123456789abcdef0123",
                                "POD_IP",
                                "10.1.2.3",
                                "ADVERTISE_HOST",
                                "conductor-0.conductor-pods.mooncakej.svc.cluster.local",
                                "MOONCAKEJ_TLS_DIR",
                                "/etc/mooncakej/tls",
                                "mooncakej.conductor.model",
                                model)));
        for (var ps : new YamlPropertySourceLoader()
                .load(profile, new FileSystemResource(root.resolve("config/" + profile + ".yaml"))))
            env.getPropertySources().addLast(ps);
        Binder b = Binder.get(env);
        ConductorProperties c =
                b.bind("mooncakej.conductor", ConductorProperties.class).get();
        ClusterSettings cluster =
                b.bind("mooncakej.cluster", ClusterSettings.class).orElseGet(ClusterSettings::embedded);
        assertThat(c.blockTokens()).isEqualTo(32);
        assertThat(b.bind("mooncakej.decode.kv-secret", String.class).get()).isEqualTo("0123456789abcdef0123");
        switch (profile) {
            case "single-host" -> {
                assertThat(cluster.enabled()).isFalse();
                assertThat(c.prefillWorkers()).containsExactly("http://127.0.0.1:8010");
            }
            case "cluster" -> {
                assertThat(cluster.etcdEndpoints()).containsExactly("https://127.0.0.1:2379");
                assertThat(c.admission()).isEqualTo("early-rejection");
            }
            default -> {
                assertThat(cluster.etcdEndpoints()).containsExactly("https://etcd:2379");
                assertThat(cluster.advertiseHost()).isEqualTo("conductor-0.conductor-pods.mooncakej.svc.cluster.local");
                assertThat(b.bind("mooncakej.decode.kv-transports", String.class)
                                .get())
                        .isEqualTo("rdma,tcp");
            }
        }
        assertThat(List.of(cluster.prefix())).containsExactly("mooncakej/");
        if (!profile.equals("single-host")) { // the cluster profiles: TLS for the internal plane and for etcd
            assertThat(cluster.tls()).isTrue();
            assertThat(b.bind("server.ssl.bundle", String.class).get()).isEqualTo(cluster.tlsBundle());
            assertThat(b.bind("spring.ssl.bundle.pem." + cluster.tlsBundle() + ".truststore.certificate", String.class)
                            .get())
                    .endsWith("/etc/mooncakej/tls/ca.crt");
            assertThat(cluster.etcdCaFile()).isEqualTo("/etc/mooncakej/tls/ca.crt");
            assertThat(cluster.etcdCertFile()).isEqualTo("/etc/mooncakej/tls/tls.crt");
            assertThat(cluster.advertiseUrl(8000)).startsWith("https://");
        }
    }
}
