package dev.mooncakej.cli;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A soak against a simulated-engine cluster it starts ({@code ./mooncakej up --engine simulated},
 * loopback): clients send streamed and whole completions, some hang up mid-stream, and a decode
 * worker is SIGKILLed and restarted halfway. Every request must end complete or with a clean error
 * (a status and an OpenAI error body, or an error event), and none may fail for the kill (its streams
 * move to the other decode worker, its prefills are placed again); the client's counts by outcome must equal
 * the conductor's ({@code mooncakej_requests_total}) exactly, and once idle no decode worker may hold a
 * KV block or a reservation and no prefill worker a job. Prints progress, then one JSON object.
 */
@Command(
        name = "soak",
        description = "Soak a simulated-engine cluster (streams, hang-ups, a worker restart) and reconcile every "
                + "request with the services' counts.")
final class SoakCommand implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @Option(names = "--minutes", description = "how long to run (default 1)")
    Double minutes;

    @Option(names = "--seconds", description = "how long to run, in seconds (overrides --minutes; the CI soak)")
    Integer seconds;

    @Option(names = "--clients", defaultValue = "8")
    int clients;

    @Option(names = "--port", defaultValue = "18800")
    int port;

    @Option(names = "--json")
    boolean json;

    private volatile Process restartedWorker;

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final Map<String, AtomicLong> seen = new ConcurrentHashMap<>();
    private final List<String> unclean = Collections.synchronizedList(new ArrayList<>());

    private void count(String outcome) {
        seen.computeIfAbsent(outcome, k -> new AtomicLong()).incrementAndGet();
    }

    @Override
    public void run() {
        long runMillis = seconds != null ? seconds * 1000L : (long) ((minutes == null ? 1 : minutes) * 60_000);
        if (runMillis < 5000) throw new IllegalArgumentException("--seconds: expected at least 5");
        if (clients < 1 || clients > 256)
            throw new IllegalArgumentException("--clients " + clients + ": expected 1..256");
        Process cluster = null;
        try {
            Path model = Machine.projectRoot().resolve(".cache/models/mooncakej-tiny.gguf");
            if (!Files.exists(model)) {
                Files.createDirectories(model.getParent());
                ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
            }
            cluster = ClusterLauncher.start(
                    port,
                    model,
                    "--prefill",
                    "1",
                    "--decode",
                    "2",
                    "--engine",
                    "simulated",
                    "--sim-time-scale",
                    "0.05");
            String base = "http://127.0.0.1:" + port;
            long t0 = System.nanoTime(), until = t0 + TimeUnit.MILLISECONDS.toNanos(runMillis);
            AtomicLong sent = new AtomicLong();
            List<Thread> ts = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                long seed = c;
                ts.add(Thread.ofVirtual().start(() -> client(base, new SplittableRandom(seed), until, sent)));
            }
            boolean restarted = false;
            while (System.nanoTime() < until) {
                Thread.sleep(1000);
                double done = (System.nanoTime() - t0) / (double) (until - t0);
                System.err.printf("\rsoak: %3.0f%%, %d requests, %s", done * 100, sent.get(), seen);
                if (!restarted && done >= 0.3) { // early: a restart takes 30-40 s on a loaded 2-core host
                    restarted = true;
                    restart(port + 21);
                }
            }
            for (Thread t : ts) t.join(TimeUnit.SECONDS.toMillis(120));
            System.err.println();
            List<String> stuck = new ArrayList<>(inFlight.values()); // still waiting after 120 s
            for (String what : stuck) {
                unclean.add("a request had not ended 120 s after the run: " + what);
                String id = what.substring(0, what.indexOf(' '));
                System.err.println("soak: the services' log lines of " + id + ":");
                try (var logs = Files.newDirectoryStream(Machine.projectRoot().resolve(".cache/logs"), "*.log")) {
                    for (Path log : logs)
                        try (var lines = Files.lines(log)) {
                            lines.filter(l -> l.contains(id))
                                    .forEach(l -> System.err.println("  " + log.getFileName() + ": " + l));
                        }
                }
            }
            Thread.sleep(1500); // pooled blocks are released, reports land
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("command", "./mooncakej soak --seconds " + runMillis / 1000 + " --clients " + clients);
            out.put("machine", Machine.describe());
            out.put("requests", sent.get());
            Map<String, Long> client = new TreeMap<>();
            seen.forEach((k, v) -> client.put(k, v.get()));
            out.put("client_outcomes", client);
            Map<String, Long> conductor = outcomes(Http.get(http, base + "/actuator/prometheus"));
            out.put("conductor_outcomes", conductor);
            out.put("streams_at_kill", streamsAtKill);
            out.put("stream_migrations", outcomes(Http.get(http, base + "/actuator/prometheus"), MIGRATIONS));
            long total = client.values().stream().mapToLong(Long::longValue).sum();
            List<String> problems = new ArrayList<>(unclean.subList(0, Math.min(10, unclean.size())));
            if (total != sent.get())
                problems.add("client outcomes sum to " + total + " of " + sent.get() + " requests");
            long failed = client.getOrDefault("error", 0L);
            if (failed > 0) // a killed decode worker's streams move and its prefills are placed again: none fails
            problems.add(failed + " requests failed (the SIGKILL of decode-1 should cost none)");
            for (String k : List.of("ok", "cancelled", "rejected", "error")) {
                long a = client.getOrDefault(k, 0L), b = conductor.getOrDefault(k, 0L);
                if (a != b) problems.add(k + ": client " + a + ", conductor " + b);
            }
            // each decode worker ended exactly the decodes the conductor saw it take (the restarted one:
            // those it took after its restart; its counts started at zero, the conductor's did not)
            Map<String, Long> accepted = outcomes(Http.get(http, base + "/actuator/prometheus"), ACCEPTED);
            Map<String, Object> workers = new LinkedHashMap<>();
            for (int d = 0; d < 2; d++) {
                int wport = port + 20 + d;
                long own = outcomes(
                                Http.get(http, "http://127.0.0.1:" + wport + "/actuator/prometheus"), DECODE_OUTCOME)
                        .values()
                        .stream()
                        .mapToLong(Long::longValue)
                        .sum();
                long took = accepted.entrySet().stream()
                                .filter(e -> e.getKey().endsWith(":" + wport))
                                .mapToLong(Map.Entry::getValue)
                                .sum()
                        - (d == 1 ? acceptedBeforeRestart : 0);
                workers.put(
                        "decode-" + d,
                        d == 1
                                ? Map.of(
                                        "conductor_accepted_before_restart",
                                        acceptedBeforeRestart,
                                        "conductor_accepted_after",
                                        took,
                                        "worker_ended_after",
                                        own)
                                : Map.of("conductor_accepted", took, "worker_ended", own));
                if (own != took)
                    problems.add("decode-" + d + ": the conductor saw it take " + took + " decodes, it ended " + own);
            }
            out.put("decode_workers", workers);
            // the store: every read lease lapses and every put ends (within the lease TTL, 5 s by default)
            long leaseDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            String metrics = Http.get(http, base + "/actuator/prometheus");
            while ((gauge(metrics, "mooncakej_store_leased_blocks") > 0
                            || gauge(metrics, "mooncakej_store_unfinished_puts") > 0)
                    && System.nanoTime() < leaseDeadline) {
                Thread.sleep(500);
                metrics = Http.get(http, base + "/actuator/prometheus");
            }
            long leased = gauge(metrics, "mooncakej_store_leased_blocks"),
                    unfinished = gauge(metrics, "mooncakej_store_unfinished_puts");
            out.put("store", Map.of("leased_blocks", leased, "unfinished_puts", unfinished));
            if (leased != 0 || unfinished != 0)
                problems.add("the store still has " + leased + " leased blocks and " + unfinished
                        + " unfinished puts 15 s after the last request");
            for (int d = 0; d < 2; d++) {
                JsonNode st = JSON.readTree(Http.get(
                        http, "http://127.0.0.1:" + (port + 20 + d) + "/internal/status", ServeBench.CREDENTIAL));
                if (st.path("usedBlocks").asInt() != 0 || st.path("active").asInt() != 0)
                    problems.add("decode-" + d + " still holds "
                            + st.path("usedBlocks").asInt() + " blocks, "
                            + st.path("active").asInt() + " requests");
            }
            JsonNode p = JSON.readTree(
                    Http.get(http, "http://127.0.0.1:" + (port + 10) + "/internal/status", ServeBench.CREDENTIAL));
            if (p.path("active").asInt() != 0 || p.path("queued").asInt() != 0)
                problems.add("prefill-0 still has " + p.path("active").asInt() + " jobs");
            out.put("restarted_worker", "decode-1");
            out.put("unclean_endings", unclean.size());
            out.put("problems", problems);
            out.put("reconciled", problems.isEmpty());
            if (json) System.out.println(JSON.writeValueAsString(out));
            else out.forEach((k, v) -> System.out.printf("%-20s %s%n", k, v));
            if (!problems.isEmpty()) throw new IllegalStateException("the soak did not reconcile: " + problems);
        } catch (IllegalStateException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("soak failed: " + e, e);
        } finally {
            ClusterLauncher.stop(restartedWorker); // not up's child
            ClusterLauncher.stop(cluster);
            keepLogs();
        }
    }

    /** The cluster's logs, copied to .cache/logs/soak/ (the next cluster's would overwrite them). */
    private static void keepLogs() {
        Path logs = Machine.projectRoot().resolve(".cache/logs");
        try (var files = Files.list(logs)) {
            Path kept = Files.createDirectories(logs.resolve("soak"));
            for (Path f : files.filter(f -> f.toString().endsWith(".log")).toList())
                Files.copy(f, kept.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            System.err.println("soak: could not keep the cluster's logs: " + e.getMessage());
        }
    }

    /**
     * Long streams (400 tokens, read to their end) past their second chunk on decode-1 (the conductor
     * names each stream's decode worker in a response header): decoding there, far from their end.
     */
    private final AtomicLong longStreamsOnDecode1 = new AtomicLong();

    /** The requests each client is waiting on: its id and how far it got (what a hung one reports). */
    private final Map<Thread, String> inFlight = new ConcurrentHashMap<>();

    /** One client: a mix of whole and streamed completions, some streams hung up after two chunks. */
    private void client(String base, SplittableRandom rnd, long until, AtomicLong sent) {
        while (System.nanoTime() < until) {
            int kind = rnd.nextInt(10);
            boolean stream = kind >= 4, hangUp = kind >= 8, along = kind == 7; // a long stream, read to its end
            String body = JSON.writeValueAsString(Map.of(
                    "model",
                    "mooncakej-tiny",
                    "prompt",
                    "soak " + rnd.nextInt(50) + " " + "word ".repeat(rnd.nextInt(1, 60)),
                    "max_tokens",
                    hangUp ? 1000 : along ? 400 : rnd.nextInt(2, 40),
                    "stream",
                    stream));
            String id = "soak-" + sent.incrementAndGet();
            String what = id + " (stream " + stream + (hangUp ? ", hang-up" : "") + ")";
            inFlight.put(Thread.currentThread(), what + ": no response yet");
            try {
                HttpRequest req = HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                        .timeout(Duration.ofSeconds(120))
                        .header("Content-Type", "application/json")
                        .header("X-Request-Id", id)
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build();
                if (!stream) {
                    HttpResponse<String> r = http.send(req, HttpResponse.BodyHandlers.ofString());
                    classify(r.statusCode(), r.body(), false, false);
                    continue;
                }
                HttpResponse<InputStream> r = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
                if (r.statusCode() != 200) {
                    classify(r.statusCode(), new String(r.body().readAllBytes(), StandardCharsets.UTF_8), false, false);
                    continue;
                }
                inFlight.put(Thread.currentThread(), what + ": status 200, no event yet");
                int chunks = 0, events = 0;
                boolean done = false, error = false, decoding = false;
                boolean onDecode1 = "decode-1"
                        .equals(r.headers().firstValue("x-mooncakej-decode").orElse(""));
                try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (!line.startsWith("data:")) continue;
                        String data = line.substring(5).trim();
                        inFlight.put(
                                Thread.currentThread(),
                                what + ": status 200, " + ++events + " events, last "
                                        + data.substring(0, Math.min(80, data.length())));
                        if (data.equals("[DONE]")) done = true;
                        else if (data.contains("\"error\"")) error = true;
                        else if (++chunks == 2 && hangUp) break; // the client goes away
                        else if (chunks == 2 && along && onDecode1) {
                            decoding = true;
                            longStreamsOnDecode1.incrementAndGet();
                        }
                    }
                } finally {
                    if (decoding) longStreamsOnDecode1.decrementAndGet();
                }
                if (hangUp && !done && !error) count("cancelled");
                else classify(200, "", error, !done);
            } catch (Exception e) {
                count("error");
                unclean.add("a request " + what + " ended with "
                        + e.getClass().getSimpleName() + ": " + e.getMessage()
                        + (e.getCause() == null ? "" : " caused by " + e.getCause()));
            } finally {
                inFlight.remove(Thread.currentThread());
            }
        }
    }

    private void classify(int status, String body, boolean errorEvent, boolean cut) {
        if (status == 200 && !errorEvent && !cut) count("ok");
        else if (status == 200) {
            count("error");
            if (cut && !errorEvent) unclean.add("a stream ended without [DONE] or an error event");
        } else if (status == 429) count("rejected");
        else {
            count("error");
            if (!body.contains("\"error\"")) unclean.add("HTTP " + status + " without an OpenAI error body");
        }
    }

    private static final Pattern OUTCOME =
            Pattern.compile("mooncakej_requests_total\\{[^}]*outcome=\"([a-z_]+)\"[^}]*} ([0-9.E]+)");

    private static final Pattern DECODE_OUTCOME =
            Pattern.compile("mooncakej_decode_requests_total\\{[^}]*outcome=\"([a-z_]+)\"[^}]*} ([0-9.E]+)");
    private static final Pattern ACCEPTED =
            Pattern.compile("mooncakej_worker_decodes_accepted_total\\{[^}]*worker=\"([^\"]+)\"[^}]*} ([0-9.E]+)");

    /** A gauge's value in Prometheus text (-1 when it is missing: the soak then reports it). */
    private static long gauge(String metrics, String name) {
        Matcher m = Pattern.compile("(?m)^" + name + "(\\{[^}]*})? ([0-9.E]+)$").matcher(metrics);
        return m.find() ? (long) Double.parseDouble(m.group(2)) : -1;
    }

    /** The streams the killed worker was decoding just before the kill (by its own gauge). */
    private volatile long streamsAtKill;

    private static final Pattern MIGRATIONS =
            Pattern.compile("mooncakej_stream_migrations_total\\{[^}]*reason=\"([a-z_]+)\"[^}]*} ([0-9.E]+)");

    /** The decodes the conductor saw the restarted worker take before it was killed. */
    private volatile long acceptedBeforeRestart;

    private static Map<String, Long> outcomes(String metrics) {
        return outcomes(metrics, OUTCOME);
    }

    private static Map<String, Long> outcomes(String metrics, Pattern p) {
        Map<String, Long> out = new TreeMap<>();
        Matcher m = p.matcher(metrics);
        while (m.find()) out.merge(m.group(1), (long) Double.parseDouble(m.group(2)), Long::sum);
        return out;
    }

    /** SIGKILLs the worker on {@code httpPort} and starts it again with the same command and environment. */
    private void restart(int httpPort) throws Exception {
        ProcessHandle worker = ClusterLauncher.worker(httpPort);
        List<String> cmd = new ArrayList<>();
        cmd.add(worker.info().command().orElseThrow());
        cmd.addAll(List.of(worker.info().arguments().orElseThrow()));
        // killed while it decodes a stream far from its end, so that the stream must move: a long stream
        // the conductor placed on decode-1 has relayed its second token (up to 20 s; then any stream in
        // flight there). A short stream or a hang-up may end between the gauge's read and the kill.
        String workerMetrics = "http://127.0.0.1:" + httpPort + "/actuator/prometheus";
        long longBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        long busyBy = longBy + TimeUnit.SECONDS.toNanos(10);
        boolean longHere = false;
        while (true) {
            streamsAtKill = gauge(Http.get(http, workerMetrics), "mooncakej_decode_batch_size");
            longHere = longStreamsOnDecode1.get() > 0;
            long now = System.nanoTime();
            if (streamsAtKill >= 1 && (longHere || now > longBy) || now > busyBy) break;
            Thread.sleep(5);
        }
        System.err.println("\nsoak: SIGKILL (decoding " + streamsAtKill + " streams"
                + (longHere ? ", a long one among them" : ", no long stream among them")
                + ") and restart of the worker on port " + httpPort);
        worker.destroyForcibly();
        long gone = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (worker.isAlive() && System.nanoTime() < gone) Thread.sleep(50);
        // dead, it takes nothing more: what the conductor counted for it so far is the baseline
        String conductorMetrics = Http.get(http, "http://127.0.0.1:" + (httpPort - 21) + "/actuator/prometheus");
        acceptedBeforeRestart = outcomes(conductorMetrics, ACCEPTED).entrySet().stream()
                .filter(e -> e.getKey().endsWith(":" + httpPort))
                .mapToLong(Map.Entry::getValue)
                .sum();
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(Machine.projectRoot()
                        .resolve(".cache/logs/decode-1.log")
                        .toFile()));
        pb.environment().put("MOONCAKEJ_CLUSTER_SECRET", ServeBench.SECRET);
        pb.environment().put("MOONCAKEJ_DECODE_KVSECRET", ServeBench.SECRET);
        restartedWorker = pb.start(); // not up's child: stopped by this command when it ends
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            try {
                if (Http.get(http, "http://127.0.0.1:" + httpPort + "/actuator/health")
                        .contains("UP")) return;
            } catch (Exception notYet) {
                // starting
            }
            Thread.sleep(500);
        }
        throw new IllegalStateException("the restarted worker on port " + httpPort + " did not come up in 120 s");
    }
}
