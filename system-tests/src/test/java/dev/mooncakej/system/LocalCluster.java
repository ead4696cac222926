package dev.mooncakej.system;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreGet;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A local cluster started exactly as a user starts it: {@code ./mooncakej up}, as a child process
 * (conductor, prefill and decode workers each a JVM of their own). Closing it sends SIGTERM, which
 * makes the launcher stop every process it started.
 */
final class LocalCluster implements AutoCloseable {
    final int port;
    final Path model;
    private final Process process;
    private final List<String> output = new ArrayList<>();

    private LocalCluster(int port, Path model, Process process) {
        this.port = port;
        this.model = model;
        this.process = process;
    }

    static Path projectRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("mooncakej"))) p = p.getParent();
        if (p == null)
            throw new IllegalStateException(
                    "cannot find the project root above " + Path.of("").toAbsolutePath());
        return p;
    }

    static LocalCluster start(Path model, int prefill, int decode, String... extra) throws Exception {
        return start(model, prefill, decode, Map.of(), extra);
    }

    /**
     * As above, with environment variables for every process (Spring's relaxed binding:
     * MOONCAKEJ_DECODE_KVWAITMILLIS=...).
     */
    static LocalCluster start(Path model, int prefill, int decode, Map<String, String> env, String... extra)
            throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(model, prefill, decode, env, extra);
            } catch (IllegalStateException e) { // a port taken between the check and the bind: another range
                if (attempt == 3 || !String.valueOf(e.getMessage()).contains("already in use")) throw e;
            }
        }
    }

    private static LocalCluster startOnce(Path model, int prefill, int decode, Map<String, String> env, String... extra)
            throws Exception {
        int port = freeBasePort();
        List<String> cmd = new ArrayList<>(List.of(
                "bash",
                "mooncakej",
                "up",
                "--port",
                String.valueOf(port),
                "--model",
                model.toString(),
                "--prefill",
                String.valueOf(prefill),
                "--decode",
                String.valueOf(decode)));
        cmd.addAll(List.of(extra));
        ProcessBuilder pb =
                new ProcessBuilder(cmd).directory(projectRoot().toFile()).redirectErrorStream(true);
        pb.environment().put("MOONCAKEJ_NO_BUILD", "1"); // the reactor has built the jars
        pb.environment().putAll(env);
        // the cluster secret, as a user hands it to up: in the environment (the test signs its internal calls)
        String secret =
                env.getOrDefault("MOONCAKEJ_KV_SECRET", "test-cluster-secret-" + Long.toHexString(System.nanoTime()));
        pb.environment().put("MOONCAKEJ_CLUSTER_SECRET", secret);
        credential = ClusterCredential.of(secret);
        LocalCluster.secret = secret;
        Process p = pb.start();
        LocalCluster c = new LocalCluster(port, model, p);
        CompletableFuture<Boolean> up = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try (BufferedReader r =
                    new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (c.output) {
                        c.output.add(line);
                    }
                    if (line.startsWith("Mooncake-J is up")) up.complete(true);
                }
            } catch (IOException ignored) {
                // process ended
            }
            up.complete(false);
        });
        boolean ok;
        try {
            ok = up.get(240, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            ok = false;
        }
        if (!ok) {
            c.close();
            throw new IllegalStateException(
                    "./mooncakej up did not come up; its output:\n" + String.join("\n", c.output));
        }
        return c;
    }

    String url() {
        return "http://127.0.0.1:" + port;
    }

    String prefillUrl(int i) {
        return "http://127.0.0.1:" + (port + 10 + i);
    }

    String decodeUrl(int i) {
        return "http://127.0.0.1:" + (port + 20 + i);
    }

    /** How many of {@code keys} the store master knows a replica of. */
    int heldReplicas(long[] keys) throws IOException, InterruptedException {
        HttpResponse<String> r = post(url() + "/internal/store/get", InternalJson.encode(new StoreGet(keys)));
        if (r.statusCode() != 200) throw new IllegalStateException("store get: " + r.statusCode() + " " + r.body());
        return (int) InternalJson.decode(r.body(), StoreReplicas.class).replicas().stream()
                .filter(l -> !l.isEmpty())
                .count();
    }

    /** The block keys the services derive for {@code model} (its name and size, 32-token blocks). */
    static BlockKeys blockKeys(Path model) throws IOException {
        try (GgufFile f = GgufFile.open(model)) {
            String name = f.has("general.name")
                    ? f.getString("general.name")
                    : model.getFileName().toString();
            return new BlockKeys(name + "@" + f.fileSize(), 32);
        }
    }

    /** A prompt of about 1500 characters that shares no block with another seed's. */
    static String story(long seed) {
        Random rnd = new Random(seed);
        StringBuilder sb = new StringBuilder("story " + seed + ":");
        while (sb.length() < 1500) sb.append(' ').append("w").append(rnd.nextInt(3000));
        return sb.toString();
    }

    /** The log of one process of this cluster (conductor, prefill-0, decode-1, ...). */
    String log(String process) throws IOException {
        return Files.readString(projectRoot().resolve(".cache/logs/" + process + ".log"));
    }

    /** The secret of the most recently started cluster (a test checks it leaks nowhere). */
    static volatile String secret;

    /** The credential of the most recently started cluster (tests run one cluster at a time). */
    static volatile ClusterCredential credential;

    /** A request builder that carries the cluster credential to internal routes (as the services' own calls do). */
    static HttpRequest.Builder request(String url) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url));
        if (url.contains("/internal/") && credential != null) b.header(ClusterCredential.HEADER, credential.value());
        return b;
    }

    /** POST a JSON body; returns the response. Internal routes get the cluster credential. */
    static HttpResponse<String> post(String url, String body) throws IOException, InterruptedException {
        return LeakCheckingClient.create()
                .send(
                        request(url)
                                .timeout(Duration.ofSeconds(180))
                                .header("Content-Type", "application/json")
                                .POST(HttpRequest.BodyPublishers.ofString(body))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
    }

    /** GET a URL; returns the body. */
    static String get(String url) throws IOException, InterruptedException {
        HttpResponse<String> r = LeakCheckingClient.create()
                .send(request(url).timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        return r.body();
    }

    /** The first sample of Prometheus metric line {@code prefix} on {@code url}'s actuator, or NaN. */
    static double metric(String url, String prefix) throws IOException, InterruptedException {
        // "name{label=\"value\"" matches whatever other labels the line has, in whatever order (service first)
        int brace = prefix.indexOf('{');
        String name = brace < 0 ? prefix : prefix.substring(0, brace + 1);
        String label = brace < 0 ? "" : prefix.substring(brace + 1);
        return get(url + "/actuator/prometheus")
                .lines()
                .filter(l -> brace < 0 ? l.startsWith(prefix) : l.startsWith(name) && l.contains(label))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst()
                .orElse(Double.NaN);
    }

    /**
     * The prefill worker (of the first {@code workers}) with the most prefills running or queued, once
     * one has any (up to 30 s; -1 if none has); by each worker's {@code /internal/status}.
     */
    int busiestPrefill(int workers) throws IOException, InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < until) {
            int busiest = -1, most = 0;
            for (int i = 0; i < workers; i++) {
                String status = get(prefillUrl(i) + "/internal/status");
                int active = field(status, "active") + field(status, "queued");
                if (active > most) {
                    most = active;
                    busiest = i;
                }
            }
            if (busiest >= 0) return busiest;
            Thread.sleep(20);
        }
        return -1;
    }

    private static int field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":(\\d+)").matcher(json);
        return m.find() ? Integer.parseInt(m.group(1)) : 0;
    }

    /** A base port with the 40 ports above it free (conductor, workers, KV ports). */
    private static int freeBasePort() throws IOException {
        for (int attempt = 0; attempt < 50; attempt++) {
            // below the kernel's ephemeral range (32768-60999 here): an outgoing connection of another
            // test cannot take one of these ports between this check and up's bind
            int base = 10000 + (int) (Math.random() * 22000);
            if (allFree(base)) return base;
        }
        throw new IOException("no free port range found");
    }

    private static boolean allFree(int base) {
        for (int p : new int[] {
            base, base + 10, base + 11, base + 12, base + 20, base + 21, base + 22, base + 30, base + 31, base + 32,
            base + 40, base + 41, base + 42
        }) {
            try (ServerSocket s = new ServerSocket(p)) {
                s.setReuseAddress(true);
            } catch (IOException e) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() {
        process.destroy(); // SIGTERM: the launcher's trap stops the conductor and workers
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) process.destroyForcibly();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
