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

/**
 * A real etcd (Debian's etcd-server, installed by {@code ./mooncakej test}) started as a child process
 * on loopback with free ports and a temporary data directory; ready when /health answers.
 */
public final class EtcdProcess implements AutoCloseable {
    private final Process process;
    private final Path dataDir;
    private final int clientPort;
    private final int peerPort;

    public EtcdProcess() throws Exception {
        this(freePort(), freePort(), Files.createTempDirectory("etcd-test"));
    }

    private EtcdProcess(int clientPort, int peerPort, Path dataDir) throws Exception {
        this.clientPort = clientPort;
        this.peerPort = peerPort;
        this.dataDir = dataDir;
        String c = "http://127.0.0.1:" + clientPort, p = "http://127.0.0.1:" + peerPort;
        process = new ProcessBuilder(
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
                        "warn")
                .redirectErrorStream(true)
                .redirectOutput(
                        dataDir.resolveSibling(dataDir.getFileName() + ".log").toFile())
                .start();
        awaitHealthy();
    }

    /** Starts etcd again on the same ports and data (after {@link #stop}). */
    public EtcdProcess restart() throws Exception {
        return new EtcdProcess(clientPort, peerPort, dataDir);
    }

    public String url() {
        return "http://127.0.0.1:" + clientPort;
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
                        HttpRequest.newBuilder(URI.create(url() + "/health"))
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
