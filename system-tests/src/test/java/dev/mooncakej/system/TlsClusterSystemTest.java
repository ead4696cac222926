package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.kvtransfer.engine.EtcdAccess;
import dev.mooncakej.kvtransfer.engine.EtcdProcess;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.auth.Permission;
import io.etcd.jetcd.options.GetOption;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The cluster profile (config/cluster.yaml, unchanged) as a deployment runs it: certificates made by
 * {@code ./mooncakej certs}, a real etcd serving TLS only with client certificates required and etcd
 * authentication on (each service is the etcd user named by its certificate's CN, with read-write on
 * the cluster's prefix and nothing else), and a conductor, a prefill and a decode worker started with
 * the profile and its documented environment. The cluster forms through etcd and serves a request
 * over https; its members advertise https URLs; plain http to a service, a client that does not trust
 * the cluster CA, an etcd client without a certificate, and an etcd user without a role all get
 * nothing.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class TlsClusterSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private static void certs(Path pki, String name, String hosts) throws Exception {
        Process p = new ProcessBuilder(
                        LocalCluster.projectRoot().resolve("mooncakej").toString(),
                        "certs",
                        "--dir",
                        pki.toString(),
                        "--name",
                        name,
                        "--hosts",
                        hosts)
                .redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
    }

    private static EtcdAccess etcdAs(EtcdProcess etcd, Path pki, String name) {
        Path d = pki.resolve(name);
        return new EtcdAccess(
                List.of(etcd.url()), null, null, d.resolve("ca.crt"), d.resolve("tls.crt"), d.resolve("tls.key"));
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    /** etcd authentication on: root, and the services' user with read-write on mooncakej/ only. */
    private static void enableAuth(Client root) throws Exception {
        var auth = root.getAuthClient();
        String pw = Long.toHexString(System.nanoTime()) + "-not-used"; // the users log in by certificate
        auth.userAdd(bytes("root"), bytes(pw)).get(10, TimeUnit.SECONDS);
        auth.userGrantRole(bytes("root"), bytes("root")).get(10, TimeUnit.SECONDS);
        auth.userAdd(bytes("mooncakej"), bytes(pw)).get(10, TimeUnit.SECONDS);
        auth.roleAdd(bytes("mooncakej")).get(10, TimeUnit.SECONDS);
        auth.roleGrantPermission(
                        bytes("mooncakej"), bytes("mooncakej/"), bytes("mooncakej0"), Permission.Type.READWRITE)
                .get(10, TimeUnit.SECONDS);
        auth.userGrantRole(bytes("mooncakej"), bytes("mooncakej")).get(10, TimeUnit.SECONDS);
        auth.userAdd(bytes("intruder"), bytes(pw)).get(10, TimeUnit.SECONDS); // a user, but no role
        auth.authEnable().get(10, TimeUnit.SECONDS);
    }

    private static SSLContext trusting(Path caCrt) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        try (InputStream in = Files.newInputStream(caCrt)) {
            ks.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        return ctx;
    }

    private static JsonNode leaderInfo(HttpClient https, int port) {
        try {
            return JSON.readTree(https.send(
                            ClusterProcess.request("https://127.0.0.1:" + port + "/internal/leader")
                                    .timeout(Duration.ofSeconds(3))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString())
                    .body());
        } catch (Exception e) {
            return JSON.createObjectNode();
        }
    }

    @Test
    void theClusterProfileRunsOverTlsWithEtcdAuthentication() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-tls-cluster");
        Path pki = dir.resolve("pki");
        certs(pki, "mooncakej", "127.0.0.1,localhost");
        certs(pki, "root", "127.0.0.1");
        certs(pki, "intruder", "127.0.0.1");
        Path model = LocalCluster.projectRoot().resolve(".cache/models/mooncakej-small.gguf");
        if (!Files.exists(model)) {
            Files.createDirectories(model.getParent());
            ModelGenerator.generate(ModelGenerator.Preset.SMALL, model);
        }
        List<ClusterProcess> all = new ArrayList<>();
        try (EtcdProcess etcd = EtcdProcess.tls(pki.resolve("mooncakej"))) {
            try (Client root = etcdAs(etcd, pki, "root").client()) {
                enableAuth(root);
            }
            Map<String, String> env = Map.of(
                    "ETCD_ENDPOINTS", etcd.url(),
                    "ADVERTISE_HOST", "127.0.0.1",
                    "MOONCAKEJ_MODEL", model.toString(),
                    "MOONCAKEJ_KV_SECRET", ClusterProcess.SECRET,
                    "MOONCAKEJ_TLS_DIR", pki.resolve("mooncakej").toString());
            String profile = "--spring.config.additional-location=file:"
                    + LocalCluster.projectRoot().resolve("config/cluster.yaml");
            ClusterProcess conductor = ClusterProcess.start(
                    "conductor",
                    "conductor/target/mooncakej-conductor-exec.jar",
                    dir,
                    env,
                    profile,
                    "--mooncakej.cluster.lease-ttl-seconds=3");
            all.add(conductor);
            for (String role : List.of("prefill", "decode"))
                all.add(ClusterProcess.start(
                        role,
                        role + "-worker/target/mooncakej-" + role + "-worker.jar",
                        dir,
                        env,
                        profile,
                        "--mooncakej.cluster.lease-ttl-seconds=3",
                        "--mooncakej." + role + ".threads=1",
                        "--mooncakej." + role + ".kv-port=" + ClusterProcess.freePort(),
                        "--mooncakej." + role + ".kv-transports=shm,tcp"));

            HttpClient https = LeakCheckingClient.wrap(HttpClient.newBuilder()
                    .sslContext(trusting(pki.resolve("ca.crt")))
                    .connectTimeout(Duration.ofSeconds(3))
                    .build());
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
            JsonNode info = leaderInfo(https, conductor.port);
            while (!(info.path("leader").asBoolean()
                    && info.path("prefill").size() == 1
                    && info.path("decode").size() == 1)) {
                for (ClusterProcess p : all)
                    assertThat(p.alive())
                            .as(p.name + " exited:\n" + p.logText())
                            .isTrue();
                if (System.nanoTime() > until)
                    throw new AssertionError("no TLS cluster within 240 s; last /internal/leader: " + info
                            + "\n--- conductor ---\n" + tail(conductor) + "\n--- prefill ---\n" + tail(all.get(1))
                            + "\n--- decode ---\n" + tail(all.get(2)));
                Thread.sleep(200);
                info = leaderInfo(https, conductor.port);
            }
            // the members registered through TLS etcd with https URLs, which the conductor calls
            assertThat(info.path("prefill").toString()).contains("https://127.0.0.1:");
            assertThat(info.path("decode").toString()).contains("https://127.0.0.1:");

            String body = JSON.writeValueAsString(
                    Map.of("model", "mooncakej-small", "prompt", "Hello over TLS", "max_tokens", 8, "temperature", 0));
            HttpResponse<String> r = https.send(
                    HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + conductor.port + "/v1/completions"))
                            .timeout(Duration.ofSeconds(120))
                            .header("Content-Type", "application/json")
                            .POST(HttpRequest.BodyPublishers.ofString(body))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            assertThat(r.body()).contains("\"completion_tokens\":8");

            // every service speaks TLS only: a plain http request gets no HTTP answer
            for (ClusterProcess p : all) {
                HttpClient plain = LeakCheckingClient.wrap(HttpClient.newBuilder()
                        .connectTimeout(Duration.ofSeconds(3))
                        .build());
                var req = ClusterProcess.request("http://127.0.0.1:" + p.port + "/internal/status")
                        .timeout(Duration.ofSeconds(5))
                        .build();
                int status;
                try {
                    status = plain.send(req, HttpResponse.BodyHandlers.ofString())
                            .statusCode();
                } catch (IOException refused) {
                    status = -1;
                }
                assertThat(status).as(p.name + " over plain http").isNotEqualTo(200);
            }
            // a client that does not trust the cluster CA does not get through the handshake
            HttpClient stranger = LeakCheckingClient.wrap(HttpClient.newBuilder()
                    .connectTimeout(Duration.ofSeconds(3))
                    .build());
            assertThatThrownBy(() -> stranger.send(
                            HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + conductor.port + "/v1/models"))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString()))
                    .isInstanceOf(SSLHandshakeException.class);

            // etcd: the members' entries are there (read as root), an etcd user without a role reads
            // nothing, and a client without a certificate is refused by TLS
            try (Client root = etcdAs(etcd, pki, "root").client()) {
                List<KeyValue> kvs = root.getKVClient()
                        .get(
                                bytes("mooncakej/workers/"),
                                GetOption.builder().isPrefix(true).build())
                        .get(10, TimeUnit.SECONDS)
                        .getKvs();
                assertThat(kvs).hasSize(2);
                for (KeyValue kv : kvs)
                    assertThat(kv.getValue().toString(StandardCharsets.UTF_8)).contains("https://");
            }
            try (Client intruder = etcdAs(etcd, pki, "intruder").client()) {
                assertThatThrownBy(() -> intruder.getKVClient()
                                .get(
                                        bytes("mooncakej/workers/"),
                                        GetOption.builder().isPrefix(true).build())
                                .get(10, TimeUnit.SECONDS))
                        .hasMessageContaining("permission denied");
            }
            Path ca = pki.resolve("ca.crt");
            try (Client anonymous = new EtcdAccess(List.of(etcd.url()), null, null, ca, null, null).client()) {
                assertThatThrownBy(() -> anonymous
                                .getKVClient()
                                .get(
                                        bytes("mooncakej/workers/"),
                                        GetOption.builder().isPrefix(true).build())
                                .get(5, TimeUnit.SECONDS))
                        .isNotNull();
            }
        } finally {
            for (ClusterProcess p : all) p.close();
        }
    }

    private static String tail(ClusterProcess p) {
        String t = p.logText();
        return t.substring(Math.max(0, t.length() - 3000));
    }
}
