package dev.mooncakej.kvtransfer.engine;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A real etcd (Debian's etcd-server, installed by {@code ./mooncakej test}) started as a child process
 * on loopback with free ports and a temporary data directory; ready when /health answers. {@link
 * #tls} starts it as the cluster profiles expect it: https only, client certificates required.
 */
public final class EtcdProcess implements AutoCloseable {
    private final Process process;
    private final Path dataDir;
    private final int clientPort;
    private final int peerPort;
    private final int healthPort;
    private final Path tlsDir;

    public EtcdProcess() throws Exception {
        this(freePort(), freePort(), Files.createTempDirectory("etcd-test"), null);
    }

    /**
     * etcd serving clients over TLS only, with {@code tlsDir/tls.crt} and {@code tls.key} (its server
     * certificate, valid for 127.0.0.1), trusting {@code tlsDir/ca.crt} and requiring a client
     * certificate signed by it ({@code --client-cert-auth}); health on a separate plain loopback port.
     */
    public static EtcdProcess tls(Path tlsDir) throws Exception {
        return new EtcdProcess(freePort(), freePort(), Files.createTempDirectory("etcd-tls-test"), tlsDir);
    }

    private EtcdProcess(int clientPort, int peerPort, Path dataDir, Path tlsDir) throws Exception {
        this.clientPort = clientPort;
        this.peerPort = peerPort;
        this.dataDir = dataDir;
        this.tlsDir = tlsDir;
        this.healthPort = tlsDir == null ? clientPort : freePort();
        String c = (tlsDir == null ? "http" : "https") + "://127.0.0.1:" + clientPort,
                p = "http://127.0.0.1:" + peerPort;
        List<String> tlsArgs = tlsDir == null
                ? List.of()
                : List.of(
                        "--cert-file",
                        tlsDir.resolve("tls.crt").toString(),
                        "--key-file",
                        tlsDir.resolve("tls.key").toString(),
                        "--trusted-ca-file",
                        tlsDir.resolve("ca.crt").toString(),
                        "--client-cert-auth",
                        "--listen-metrics-urls",
                        "http://127.0.0.1:" + healthPort);
        List<String> cmd = new ArrayList<>(List.of(
                "etcd",
                "--name",
                "n1",
                "--data-dir",
                dataDir.toString(),
                "--listen-client-urls",
                c,
                "--advertise-client-urls",
                c,
                "--listen-peer-urls",
                p,
                "--initial-advertise-peer-urls",
                p,
                "--initial-cluster",
                "n1=" + p,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "10",
                "--election-timeout",
                "100",
                "--log-level",
                "warn"));
        cmd.addAll(tlsArgs);
        process = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(
                        dataDir.resolveSibling(dataDir.getFileName() + ".log").toFile())
                .start();
        awaitHealthy();
    }

    /** Starts etcd again on the same ports and data (after {@link #stop}). */
    public EtcdProcess restart() throws Exception {
        return new EtcdProcess(clientPort, peerPort, dataDir, tlsDir);
    }

    public String url() {
        return (tlsDir == null ? "http" : "https") + "://127.0.0.1:" + clientPort;
    }

    private void awaitHealthy() throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        long until = System.nanoTime() + 20_000_000_000L;
        while (System.nanoTime() < until) {
            if (!process.isAlive())
                throw new IllegalStateException("etcd exited with " + process.exitValue()
                        + "; is etcd-server installed (apt-get install etcd-server)?");
            try {
                var r = http.send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + healthPort + "/health"))
                                .timeout(Duration.ofSeconds(1))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
                if (r.body().contains("\"health\":\"true\"")) return;
            } catch (IOException e) {
                // not yet
            }
            Thread.sleep(50);
        }
        throw new IllegalStateException("etcd did not become healthy within 20 s");
    }

    /** Kills etcd, keeping its data directory (for a restart). */
    public void stop() throws InterruptedException {
        process.destroyForcibly().waitFor();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() throws Exception {
        stop();
    }
}
