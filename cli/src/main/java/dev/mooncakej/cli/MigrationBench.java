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
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.json.JsonMapper;

/**
 * Issue 28's two benchmarks, each beside its anchor in the same run, on a simulated cluster of one
 * prefill and two decode workers (LLaMA3-70B timing at {@code --sim-time-scale}): streams of
 * {@code --prompt-tokens} prompts decode until each has relayed {@code --kill-after} tokens, then
 * the decode worker holding the most is SIGKILLed. Measured: how long each moved stream paused (the
 * gap the client saw across the kill), against the time to prefill a sequence of the same length
 * from scratch (the anchor: what a migration that recomputes everything costs), and the decode step
 * time before the kill. The run is made twice, with write-behind on (a moved stream's blocks come from
 * the KV pool) and off (its generated tokens are recomputed), so the step-time ratio and both pauses
 * come from one command.
 */
@Command(
        name = "migration",
        description = "The pause of a stream moved off a killed decode worker against re-prefilling it, and the decode "
                + "step time with write-behind on and off, same run.")
final class MigrationBench implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @Option(names = "--prompt-tokens", defaultValue = "1024")
    int promptTokens;

    @Option(names = "--kill-after", defaultValue = "512", description = "tokens every stream has relayed at the kill")
    int killAfter;

    @Option(names = "--tokens", defaultValue = "768", description = "tokens each stream generates")
    int tokens;

    @Option(names = "--streams", defaultValue = "6")
    int streams;

    @Option(names = "--trials", defaultValue = "5", description = "re-prefills of the anchor (median)")
    int trials;

    @Option(names = "--sim-time-scale", defaultValue = "1")
    double timeScale;

    @Option(names = "--port", defaultValue = "18800", description = "the cluster's conductor port (it is started here)")
    int port;

    @Option(names = "--json")
    boolean json;

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Override
    public void run() {
        if (killAfter < 32 || killAfter >= tokens)
            throw new IllegalArgumentException("--kill-after " + killAfter + ": expected 32.." + (tokens - 1));
        if (promptTokens + tokens > 2048)
            throw new IllegalArgumentException("--prompt-tokens + --tokens = " + (promptTokens + tokens)
                    + ": expected at most 2048 (the tiny model's context)");
        if (streams < 2 || streams > 64)
            throw new IllegalArgumentException("--streams " + streams + ": expected 2..64");
        try {
            Path model = Machine.projectRoot().resolve(".cache/models/mooncakej-tiny.gguf");
            if (!Files.exists(model)) {
                Files.createDirectories(model.getParent());
                ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put(
                    "command",
                    "./mooncakej bench migration --prompt-tokens " + promptTokens + " --kill-after " + killAfter
                            + " --tokens " + tokens + " --streams " + streams + " --sim-time-scale " + timeScale);
            out.put("machine", Machine.describe());
            Map<String, Double> on = round(model, true), off = round(model, false);
            out.put("write_behind_on", on);
            out.put("write_behind_off", off);
            out.put("step_time_ratio_on_over_off", round3(on.get("step_ms") / off.get("step_ms")));
            out.put("pause_p50_over_reprefill_p50", round3(on.get("pause_p50_ms") / on.get("reprefill_p50_ms")));
            out.put("pause_p99_over_reprefill_p50", round3(on.get("pause_p99_ms") / on.get("reprefill_p50_ms")));
            out.put(
                    "recompute_pause_p50_over_reprefill_p50",
                    round3(off.get("pause_p50_ms") / off.get("reprefill_p50_ms")));
            if (json) System.out.println(JSON.writeValueAsString(out));
            else out.forEach((k, v) -> System.out.printf("%-40s %s%n", k, v));
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("the migration benchmark failed: " + e.getMessage(), e);
        }
    }

    /** One cluster, write-behind on or off: the anchor, the streams, the kill; the figures in ms. */
    private Map<String, Double> round(Path model, boolean writeBehind) throws Exception {
        Process cluster = ClusterLauncher.start(
                port,
                model,
                Map.of("MOONCAKEJ_DECODE_WRITEBEHINDSHARE", writeBehind ? "0.5" : "0"),
                "--prefill",
                "1",
                "--decode",
                "2",
                "--engine",
                "simulated",
                "--sim-time-scale",
                String.valueOf(timeScale));
        String base = "http://127.0.0.1:" + port;
        try {
            SplittableRandom rnd = new SplittableRandom(writeBehind ? 11 : 12);
            for (int i = 0; i < 2; i++) complete(base, prompt(rnd, 64), 4); // the hop warms
            // the anchor: a sequence as long as a moved one's, prefilled from scratch (random tokens: no prefix)
            double[] reprefill = new double[trials];
            for (int i = 0; i < trials; i++) {
                long t0 = System.nanoTime();
                complete(base, prompt(rnd, promptTokens + killAfter), 1);
                reprefill[i] = (System.nanoTime() - t0) / 1e6;
            }
            List<List<Long>> chunks = new ArrayList<>();
            List<AtomicInteger> relayed = new ArrayList<>(); // tokens, not chunks: a chunk may carry several
            List<Thread> readers = new ArrayList<>();
            for (int s = 0; s < streams; s++) {
                List<Long> times = new CopyOnWriteArrayList<>();
                chunks.add(times);
                AtomicInteger n = new AtomicInteger();
                relayed.add(n);
                String body = body(prompt(rnd, promptTokens), tokens, true);
                readers.add(Thread.ofVirtual().start(() -> stream(base, body, times, n)));
            }
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(600);
            while (relayed.stream().anyMatch(c -> c.get() < killAfter)) {
                if (System.nanoTime() > until || readers.stream().anyMatch(t -> !t.isAlive()))
                    throw new IllegalStateException("a stream ended (or 600 s passed) before relaying --kill-after "
                            + killAfter + " tokens: relayed " + relayed + "; check .cache/logs/");
                Thread.sleep(5);
            }
            double[] step = {0, 0};
            int busiest = 0;
            double most = -1;
            for (int d = 0; d < 2; d++) {
                String m = Http.get(http, "http://127.0.0.1:" + (port + 20 + d) + "/actuator/prometheus");
                step[0] += sample(m, "mooncakej_decode_tbt_seconds_sum");
                step[1] += sample(m, "mooncakej_decode_tbt_seconds_count");
                double batch = sample(m, "mooncakej_decode_batch_size");
                if (batch > most) {
                    most = batch;
                    busiest = d;
                }
            }
            double poolBefore = sample(
                    Http.get(http, base + "/actuator/prometheus"), "mooncakej_prefix_hit_tokens_total{source=\"pool\"");
            int victim = port + 20 + busiest;
            ProcessHandle worker = ClusterLauncher.worker(victim);
            System.err.println("SIGKILL to the decode worker on port " + victim + " (write-behind "
                    + (writeBehind ? "on" : "off") + ", " + (long) most + " streams on it)");
            long killAt = System.nanoTime();
            worker.destroyForcibly();
            for (Thread t : readers) t.join(TimeUnit.SECONDS.toMillis(300));
            List<Double> pauses = new ArrayList<>();
            for (List<Long> c : chunks) {
                double pause = pauseAcross(c, killAt);
                if (pause > 0) pauses.add(pause);
            }
            double poolTokens = sample(
                            Http.get(http, base + "/actuator/prometheus"),
                            "mooncakej_prefix_hit_tokens_total{source=\"pool\"")
                    - poolBefore;
            Map<String, Double> r = new LinkedHashMap<>();
            r.put("step_ms", round3(step[0] / step[1] * 1000));
            r.put("reprefill_p50_ms", round3(percentile(reprefill, 0.5)));
            double[] p = pauses.stream().mapToDouble(Double::doubleValue).toArray();
            r.put("moved_streams", (double) p.length);
            r.put("pause_p50_ms", round3(percentile(p, 0.5)));
            r.put("pause_p99_ms", round3(percentile(p, 0.99)));
            r.put("pool_tokens_after_kill", poolTokens);
            // how the moved streams were placed again: taken from the pool by the surviving decode worker
            // itself, or through a prefill worker (the write-behind-off run: the pool lacks their history)
            String after = Http.get(http, base + "/actuator/prometheus");
            r.put("placed_via_pool", sample(after, "mooncakej_stream_placements_total{via=\"pool\""));
            r.put(
                    "placed_via_prefill",
                    sample(after, "mooncakej_stream_placements_total{via=\"prefill\"")
                            + sample(after, "mooncakej_stream_placements_total{via=\"prefill_after_take\""));
            int survivor = port + 20 + (1 - busiest);
            r.put(
                    "tokens_taken_from_pool",
                    32
                            * sample(
                                    Http.get(http, "http://127.0.0.1:" + survivor + "/actuator/prometheus"),
                                    "mooncakej_decode_taken_blocks_total"));
            return r;
        } finally {
            ClusterLauncher.stop(cluster);
            keepLogs(writeBehind ? "on" : "off");
        }
    }

    /** The cluster's logs, kept apart (the next cluster writes .cache/logs/ anew): .cache/logs/migration-on|off/. */
    private static void keepLogs(String which) throws IOException {
        Path logs = Machine.projectRoot().resolve(".cache/logs");
        Path kept = Files.createDirectories(logs.resolve("migration-" + which));
        try (var files = Files.list(logs)) {
            for (Path f : files.filter(Files::isRegularFile).toList())
                Files.copy(f, kept.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * The gap a stream saw across {@code killAt} when it moved (the chunk after the kill came later
     * than ten of its usual gaps), else 0: a stream of the surviving worker goes on at its pace.
     */
    private static double pauseAcross(List<Long> times, long killAt) {
        int after = 0;
        while (after < times.size() && times.get(after) <= killAt) after++;
        if (after == 0 || after == times.size()) return 0;
        long[] gaps = new long[after - 1];
        for (int i = 1; i < after; i++) gaps[i - 1] = times.get(i) - times.get(i - 1);
        Arrays.sort(gaps);
        long usual = gaps.length == 0 ? 0 : gaps[gaps.length / 2];
        long gap = times.get(after) - times.get(after - 1);
        return gap > 10 * usual ? gap / 1e6 : 0;
    }

    private static double percentile(double[] xs, double q) {
        if (xs.length == 0) return Double.NaN;
        double[] s = xs.clone();
        Arrays.sort(s);
        return s[Math.min(s.length - 1, (int) Math.ceil(q * s.length) - 1)];
    }

    private static double round3(double x) {
        return Math.round(x * 1000) / 1000.0;
    }

    /**
     * A sample's value: {@code series} is the metric's name, optionally with one label as
     * {@code name{label="value"} (the exposition orders labels its own way: service first), else 0.
     */
    static double sample(String metrics, String series) {
        int brace = series.indexOf('{');
        String name = brace < 0 ? series : series.substring(0, brace);
        String label = brace < 0 ? "" : series.substring(brace + 1).replace("}", "");
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([0-9.E+-]+)$")
                .matcher(metrics);
        while (m.find()) if (m.group(1) == null || m.group(1).contains(label)) return Double.parseDouble(m.group(2));
        return 0;
    }

    private static List<Integer> prompt(SplittableRandom rnd, int n) {
        List<Integer> ids = new ArrayList<>(n);
        for (int i = 0; i < n; i++) ids.add(1 + rnd.nextInt(250)); // the tiny model's vocabulary: 256
        return ids;
    }

    private static String body(List<Integer> prompt, int maxTokens, boolean stream) {
        return JSON.writeValueAsString(Map.of(
                "model",
                "mooncakej-tiny",
                "prompt",
                prompt,
                "max_tokens",
                maxTokens,
                "temperature",
                0,
                "ignore_eos",
                true,
                "logprobs",
                1,
                "stream",
                stream));
    }

    private void complete(String base, List<Integer> prompt, int maxTokens) throws Exception {
        HttpResponse<String> r =
                http.send(request(base, body(prompt, maxTokens, false)), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200)
            throw new IllegalStateException("a request was answered " + r.statusCode() + ": " + r.body());
    }

    /** Reads a stream, keeping each chunk's arrival time. */
    private void stream(String base, String body, List<Long> times, AtomicInteger tokens) {
        try {
            HttpResponse<InputStream> r = http.send(request(base, body), HttpResponse.BodyHandlers.ofInputStream());
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (!line.startsWith("data:") || line.contains("[DONE]")) continue;
                    if (line.contains("\"error\"")) throw new IllegalStateException("a stream failed: " + line);
                    times.add(System.nanoTime());
                    tokens.addAndGet(JSON.readTree(line.substring(5).trim())
                            .path("choices")
                            .path(0)
                            .path("logprobs")
                            .path("tokens")
                            .size());
                }
            }
        } catch (Exception e) {
            System.err.println("\n" + e.getMessage());
        }
    }

    private static HttpRequest request(String base, String body) {
        return HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                .timeout(Duration.ofSeconds(600))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
    }
}
