package dev.mooncakej.system;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One service of a multi-process cluster, started from its built jar with the project's JVM flags
 * (what {@code ./mooncakej up} runs), its output in a log file the test can read.
 */
final class ClusterProcess implements AutoCloseable {
    final String name;
    final int port;
    final Path log;
    private final Process process;

    private ClusterProcess(String name, int port, Path log, Process process) {
        this.name = name;
        this.port = port;
        this.log = log;
        this.process = process;
    }

    static final String SECRET = "cluster-test-secret-" + Long.toHexString(System.nanoTime());
    static final ClusterCredential CREDENTIAL = ClusterCredential.of(SECRET);

    /** A request to one of these processes, with the cluster credential (internal routes need it). */
    static HttpRequest.Builder request(String url) {
        return HttpRequest.newBuilder(URI.create(url)).header(ClusterCredential.HEADER, CREDENTIAL.value());
    }

    static ClusterProcess start(String name, String jar, Path logDir, String... args) throws IOException {
        return start(name, jar, logDir, Map.of(), args);
    }

    /** As {@link #start(String, String, Path, String...)}, with more environment (a profile's variables). */
    static ClusterProcess start(String name, String jar, Path logDir, Map<String, String> env, String... args)
            throws IOException {
        int port = freePort();
        Path root = LocalCluster.projectRoot();
        List<String> cmd = new ArrayList<>(List.of(
                ProcessHandle.current().info().command().orElse("java"),
                "--add-modules",
                "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
                "-Xms64m",
                "-Xmx384m",
                "-XX:+UseSerialGC",
                "-jar",
                root.resolve(jar).toString(),
                "--server.port=" + port));
        cmd.addAll(List.of(args));
        Path log = logDir.resolve(name + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        // the cluster secret in the environment, as a deployment hands it over (never on a command line)
        pb.environment().put("MOONCAKEJ_CLUSTER_SECRET", SECRET);
        pb.environment().put("MOONCAKEJ_PREFILL_KVSECRET", SECRET);
        pb.environment().put("MOONCAKEJ_DECODE_KVSECRET", SECRET);
        pb.environment().putAll(env);
        Process p = pb.start();
        return new ClusterProcess(name, port, log, p);
    }

    String url() {
        return "http://127.0.0.1:" + port;
    }

    String logText() {
        try {
            return Files.exists(log) ? Files.readString(log) : "";
        } catch (IOException e) {
            return "";
        }
    }

    boolean alive() {
        return process.isAlive();
    }

    /** kill -9: no shutdown hooks, no deregistration (its lease has to run out). */
    void kill() throws InterruptedException {
        process.destroyForcibly().waitFor();
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(20, TimeUnit.SECONDS)) process.destroyForcibly().waitFor();
    }
}
