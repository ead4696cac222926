package dev.mooncakej.cli;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages;
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
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Serving benchmark: TTFT, TBT and output tokens/s at several concurrencies through the conductor,
 * and the conductor's own overhead: the same request through the conductor and straight to the
 * workers (reserve, prefill, decode: what the conductor does), alternating, in the same run.
 * Starts its own cluster with {@code ./mooncakej up} on the {@code small} model unless given --port.
 */
@Command(
        name = "serve",
        description = "TTFT, TBT and tokens/s through the conductor, and the conductor's overhead against calling the "
                + "workers directly.")
final class ServeBench implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @Option(
            names = "--port",
            description =
                    "a running cluster's conductor port (workers on port+10 and port+20, as ./mooncakej up lays them "
                            + "out); default: start one")
    Integer port;

    @Option(names = "--model", description = "GGUF model (default: the generated small model)")
    Path model;

    @Option(names = "--concurrency", split = ",", defaultValue = "1,4,16,32")
    int[] concurrency;

    @Option(names = "--prompt-tokens", defaultValue = "256")
    int promptTokens;

    @Option(names = "--max-tokens", defaultValue = "32")
    int maxTokens;

    @Option(names = "--overhead-requests", defaultValue = "100")
    int overheadRequests;

    @Option(
            names = "--overhead-warmup",
            defaultValue = "200",
            description = "rounds before the overhead is measured (a fresh conductor runs its request path "
                    + "interpreted or C1-compiled for the first few hundred requests)")
    int overheadWarmup;

    @Option(
            names = "--tracing",
            description = "tracing's cost instead: a cluster with tracing off and one exporting every request's spans,"
                    + " the same request to both alternately (--overhead-requests rounds)")
    boolean tracing;

    @Option(names = "--json")
    boolean json;

    @Option(
            names = "--sustain",
            description = "instead: the requests per second one conductor sustains with simulated-engine workers "
                    + "at a p99 overhead of at most 5 ms (open-loop load at each of --rates, through the conductor "
                    + "and straight to the workers in turn)")
    boolean sustain;

    @Option(names = "--rates", split = ",", defaultValue = "5,10,20,40,80", description = "requests per second")
    int[] rates;

    @Option(names = "--step-seconds", defaultValue = "8", description = "seconds of load per rate and path")
    int stepSeconds;

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Override
    public void run() {
        Process cluster = null;
        try {
            if (model == null) model = smallModel();
            if (tracing) {
                Map<String, Object> r = new LinkedHashMap<>();
                r.put(
                        "command",
                        "./mooncakej bench serve --tracing --prompt-tokens " + promptTokens + " --overhead-requests "
                                + overheadRequests + " --overhead-warmup " + overheadWarmup);
                r.put("machine", Machine.describe());
                r.put(
                        "tracing",
                        TracingOverhead.measure(
                                http, model, 18600, 18700, promptOf(promptTokens), overheadRequests, overheadWarmup));
                System.out.println(json ? JSON.writeValueAsString(r) : r.toString());
                return;
            }
            if (port == null) {
                port = 18600;
                cluster = sustain
                        ? ClusterLauncher.start(port, model, "--engine", "simulated", "--sim-time-scale", "0.01")
                        : ClusterLauncher.start(port, model);
            }
            if (sustain) {
                Map<String, Object> r = sustained("http://127.0.0.1:" + port, promptOf(promptTokens));
                System.out.println(json ? JSON.writeValueAsString(r) : r.toString());
                return;
            }
            String base = "http://127.0.0.1:" + port;
            String name = JSON.readTree(get(base + "/v1/models"))
                    .get("data")
                    .get(0)
                    .get("id")
                    .asString();
            String prompt = promptOf(promptTokens);
            Map<String, Object> out = new LinkedHashMap<>();
            out.put(
                    "command",
                    "./mooncakej bench serve --prompt-tokens " + promptTokens + " --max-tokens " + maxTokens
                            + " --concurrency " + Arrays.toString(concurrency));
            out.put("machine", Machine.describe());
            out.put("model", model.toString());
            List<Map<String, Object>> levels = new ArrayList<>();
            for (int c : concurrency) {
                System.err.printf("concurrency %d ...%n", c);
                levels.add(level(base, name, prompt, c));
            }
            out.put("levels", levels);
            System.err.println(
                    "conductor overhead: the same request through the conductor and straight to the workers, "
                            + "alternating...");
            out.put("overhead", overhead(base, name, prompt));
            if (json) {
                System.out.println(JSON.writeValueAsString(out));
            } else {
                System.out.println(out.get("command"));
                System.out.println("machine: " + out.get("machine"));
                System.out.printf(
                        "%-12s %-12s %-12s %-12s %-12s %-14s%n",
                        "concurrency", "ttft p50 ms", "ttft p99 ms", "tbt p50 ms", "tbt p99 ms", "output tok/s");
                for (Map<String, Object> l : levels) {
                    System.out.printf(
                            "%-12s %-12s %-12s %-12s %-12s %-14s%n",
                            l.get("concurrency"),
                            l.get("ttft_p50_ms"),
                            l.get("ttft_p99_ms"),
                            l.get("tbt_p50_ms"),
                            l.get("tbt_p99_ms"),
                            l.get("output_tokens_per_s"));
                }
                System.out.println("conductor overhead: " + out.get("overhead"));
            }
        } catch (Exception e) {
            throw new IllegalStateException("serve benchmark failed: " + e.getMessage(), e);
        } finally {
            ClusterLauncher.stop(cluster);
        }
    }

    private Map<String, Object> level(String base, String name, String prompt, int c) throws Exception {
        int requests = Math.max(8, 2 * c);
        Histogram ttft = new Histogram(3), tbt = new Histogram(3);
        AtomicLong tokens = new AtomicLong();
        Semaphore slots = new Semaphore(c);
        long t0 = System.nanoTime();
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> fs = new ArrayList<>();
            for (int i = 0; i < requests; i++) {
                final String p = prompt + " request " + i; // distinct suffix: the shared prefix stays cached
                slots.acquire();
                fs.add(pool.submit(() -> {
                    try {
                        stream(base, name, p, ttft, tbt, tokens);
                    } finally {
                        slots.release();
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) f.get(10, TimeUnit.MINUTES);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Map<String, Object> l = new LinkedHashMap<>();
        l.put("concurrency", c);
        l.put("requests", requests);
        l.put("ttft_p50_ms", ms(ttft.getValueAtPercentile(50)));
        l.put("ttft_p99_ms", ms(ttft.getValueAtPercentile(99)));
        l.put("tbt_p50_ms", ms(tbt.getValueAtPercentile(50)));
        l.put("tbt_p99_ms", ms(tbt.getValueAtPercentile(99)));
        l.put("output_tokens_per_s", Math.round(tokens.get() / seconds * 10) / 10.0);
        return l;
    }

    private void stream(String base, String name, String prompt, Histogram ttft, Histogram tbt, AtomicLong tokens)
            throws Exception {
        String body = JSON.writeValueAsString(Map.of(
                "model",
                name,
                "prompt",
                prompt,
                "max_tokens",
                maxTokens,
                "temperature",
                0,
                "stream",
                true,
                "stream_options",
                Map.of("include_usage", true)));
        long t0 = System.nanoTime(), last = -1;
        HttpResponse<InputStream> r = http.send(completions(base, body), HttpResponse.BodyHandlers.ofInputStream());
        if (r.statusCode() != 200)
            throw new IllegalStateException(
                    "status " + r.statusCode() + ": " + new String(r.body().readAllBytes(), StandardCharsets.UTF_8));
        try (BufferedReader br = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = br.readLine()) != null) {
                if (!line.startsWith("data:")) continue;
                String data = line.substring(5).trim();
                if (data.equals("[DONE]")) break;
                JsonNode n = JSON.readTree(data);
                if (n.has("usage") && !n.get("usage").isNull()) {
                    tokens.addAndGet(n.get("usage").get("completion_tokens").asLong());
                    continue;
                }
                long now = System.nanoTime();
                synchronized (ttft) {
                    if (last < 0) ttft.recordValue((now - t0) / 1000);
                    else tbt.recordValue((now - last) / 1000);
                }
                last = now;
            }
        }
    }

    /** Median latency of one non-streamed request through the conductor vs straight to the workers. */
    private Map<String, Object> overhead(String base, String name, String prompt) throws Exception {
        String prefillUrl = "http://127.0.0.1:" + (port + 10), decodeUrl = "http://127.0.0.1:" + (port + 20);
        prepareDirect(prompt);
        int[] ids = promptIds;
        long[] blockKeys = promptKeys;
        long[] via = new long[overheadRequests],
                direct = new long[overheadRequests],
                proxied = new long[overheadRequests];
        String body =
                JSON.writeValueAsString(Map.of("model", name, "prompt", prompt, "max_tokens", 8, "temperature", 0));
        NginxHop nginx = null;
        if (NginxHop.available()) nginx = NginxHop.start(port + 5, port + 10, port + 20);
        else System.err.println("nginx is not installed (apt-get install nginx): no proxy-hop anchor in this run");
        try {
            Random order = new Random(42);
            for (int i = -overheadWarmup; i < overheadRequests; i++) { // warm-up rounds (JIT)
                // the three paths in a random order each round, with a pause between requests, so neither the
                // order nor what one request leaves running (its KV pool put) favours a path
                List<Integer> paths = new ArrayList<>(List.of(0, 1, 2));
                if (nginx == null) paths.remove(Integer.valueOf(2));
                Collections.shuffle(paths, order);
                long a = 0, b = 0, c = 0;
                for (int path : paths) {
                    Thread.sleep(20);
                    long t0 = System.nanoTime();
                    if (path == 0) {
                        complete(base, body);
                        a = System.nanoTime() - t0;
                    } else if (path == 1) {
                        directRequest(prefillUrl, decodeUrl, ids, blockKeys, 8);
                        b = System.nanoTime() - t0;
                    } else { // the same direct path with one reverse-proxy hop in front of each worker
                        directRequest(nginx.prefillUrl(), nginx.decodeUrl(), ids, blockKeys, 8);
                        c = System.nanoTime() - t0;
                    }
                }
                if (i >= 0) {
                    via[i] = a;
                    direct[i] = b;
                    proxied[i] = c;
                }
            }
        } finally {
            if (nginx != null) nginx.close();
        }
        // per round, each path against the direct path of the same round: what drifts during the run (the
        // other JVMs' collections, the VM's neighbours) cancels out of these
        long[] viaPaired = new long[overheadRequests], proxiedPaired = new long[overheadRequests];
        for (int i = 0; i < overheadRequests; i++) {
            viaPaired[i] = via[i] - direct[i];
            proxiedPaired[i] = proxied[i] - direct[i];
        }
        Arrays.sort(viaPaired);
        Arrays.sort(proxiedPaired);
        Arrays.sort(via);
        Arrays.sort(direct);
        Arrays.sort(proxied);
        double viaMs = via[overheadRequests / 2] / 1e6, directMs = direct[overheadRequests / 2] / 1e6;
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("requests", overheadRequests);
        o.put("through_conductor_p50_ms", Math.round(viaMs * 100) / 100.0);
        o.put("direct_to_workers_p50_ms", Math.round(directMs * 100) / 100.0);
        o.put("conductor_overhead_p50_ms", Math.round((viaMs - directMs) * 100) / 100.0);
        if (nginx != null) {
            double proxiedMs = proxied[overheadRequests / 2] / 1e6, hop = proxiedMs - directMs;
            o.put("through_nginx_p50_ms", Math.round(proxiedMs * 100) / 100.0);
            o.put("nginx_hop_p50_ms", Math.round(hop * 100) / 100.0);
            o.put(
                    "conductor_overhead_to_nginx_hop",
                    hop > 0 ? Math.round((viaMs - directMs) / hop * 100) / 100.0 : null);
            double pairedVia = viaPaired[overheadRequests / 2] / 1e6,
                    pairedHop = proxiedPaired[overheadRequests / 2] / 1e6;
            o.put("paired_conductor_overhead_p50_ms", Math.round(pairedVia * 100) / 100.0);
            o.put("paired_nginx_hop_p50_ms", Math.round(pairedHop * 100) / 100.0);
            o.put(
                    "paired_conductor_overhead_to_nginx_hop",
                    pairedHop > 0 ? Math.round(pairedVia / pairedHop * 100) / 100.0 : null);
            o.put("target_ratio", 1.5);
        }
        return o;
    }

    /** A completion of 8 greedy tokens of {@code prompt} for the model {@code base} serves, as JSON. */
    static String eightTokens(HttpClient http, String base, String prompt) throws Exception {
        String name = JSON.readTree(http.send(
                                HttpRequest.newBuilder(URI.create(base + "/v1/models"))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString())
                        .body())
                .get("data")
                .get(0)
                .get("id")
                .asString();
        return JSON.writeValueAsString(Map.of("model", name, "prompt", prompt, "max_tokens", 8, "temperature", 0));
    }

    /** A POST of a JSON body to the conductor's {@code /v1/completions}. */
    private static HttpRequest completions(String base, String body) {
        return HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
    }

    /** One non-streamed completion through the conductor; anything but 200 is an error. */
    private void complete(String base, String body) throws Exception {
        HttpResponse<String> r = http.send(completions(base, body), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200)
            throw new IllegalStateException("conductor answered " + r.statusCode() + ": " + r.body());
    }

    private WorkerMessages.SequenceKeys sequenceKeys;

    private int[] promptIds;
    private long[] promptKeys;

    /** The prompt's ids, block keys and sequence keys, computed once: the conductor's side of this work counts. */
    private void prepareDirect(String prompt) throws Exception {
        BlockKeys keys;
        try (GgufFile f = GgufFile.open(model)) {
            Tokenizer tok = Tokenizer.from(f);
            promptIds = tok.encode(prompt);
            String fileName = f.has("general.name")
                    ? f.getString("general.name")
                    : model.getFileName().toString();
            keys = new BlockKeys(fileName + "@" + f.fileSize(), 32);
        }
        promptKeys = keys.keys(promptIds);
        // what the decode worker needs to put the finished sequence into the KV pool, as the conductor sends it
        sequenceKeys = new WorkerMessages.SequenceKeys(
                keys.seed(),
                keys.blockTokens(),
                promptKeys,
                Arrays.copyOfRange(promptIds, promptKeys.length * keys.blockTokens(), promptIds.length));
    }

    /**
     * Open-loop load at each rate, {@code stepSeconds} through the conductor and then as long straight to
     * the workers at the same rate; the overhead at a percentile is the difference of the two paths' latency
     * percentiles. Stops after the first rate whose p99 overhead is over 5 ms.
     */
    private Map<String, Object> sustained(String base, String prompt) throws Exception {
        prepareDirect(prompt);
        String prefillUrl = "http://127.0.0.1:" + (port + 10), decodeUrl = "http://127.0.0.1:" + (port + 20);
        String body = eightTokens(http, base, prompt);
        Callable<Void> viaConductor = () -> {
            complete(base, body);
            return null;
        };
        Callable<Void> direct = () -> {
            directRequest(prefillUrl, decodeUrl, promptIds, promptKeys, 8);
            return null;
        };
        openLoop(viaConductor, 20, 10); // warm-up (JIT) on both paths
        openLoop(direct, 20, 10);
        List<Map<String, Object>> steps = new ArrayList<>();
        int sustained = 0;
        for (int rate : rates) {
            System.err.printf("%d requests/s through the conductor, then straight to the workers ...%n", rate);
            long[] c = openLoop(viaConductor, rate, stepSeconds), d = openLoop(direct, rate, stepSeconds);
            Map<String, Object> step = new LinkedHashMap<>();
            step.put("rate", rate);
            step.put("conductor_p50_ms", ms(c[0]));
            step.put("conductor_p99_ms", ms(c[1]));
            step.put("direct_p50_ms", ms(d[0]));
            step.put("direct_p99_ms", ms(d[1]));
            step.put("overhead_p50_ms", ms(c[0] - d[0]));
            step.put("overhead_p99_ms", ms(c[1] - d[1]));
            step.put("errors", c[2] + d[2]);
            steps.add(step);
            if (c[1] - d[1] <= 5000 && c[2] == 0) sustained = rate;
            else break;
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put(
                "command",
                "./mooncakej bench serve --sustain --rates " + Arrays.toString(rates) + " --step-seconds "
                        + stepSeconds);
        out.put("machine", Machine.describe());
        out.put("engine", "simulated (LLaMA3-70B on 8xA800 profile, time x 0.01)");
        out.put("steps", steps);
        out.put("sustained_rps_at_p99_overhead_le_5ms", sustained);
        return out;
    }

    /** Sends a request every 1/rate s for the given seconds (each on its own thread); p50 and p99 in us, errors. */
    private static long[] openLoop(Callable<Void> call, int rate, int seconds) throws Exception {
        org.HdrHistogram.Histogram h = new org.HdrHistogram.ConcurrentHistogram(3);
        AtomicLong errors = new AtomicLong();
        long interval = 1_000_000_000L / rate, t0 = System.nanoTime(), n = (long) rate * seconds;
        try (var pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (long i = 0; i < n; i++) {
                long at = t0 + i * interval, wait = at - System.nanoTime();
                if (wait > 0) LockSupport.parkNanos(wait);
                pool.submit(() -> {
                    long s0 = System.nanoTime();
                    try {
                        call.call();
                        h.recordValue((System.nanoTime() - s0) / 1000);
                    } catch (Exception e) {
                        errors.incrementAndGet();
                    }
                });
            }
        }
        return new long[] {h.getValueAtPercentile(50), h.getValueAtPercentile(99), errors.get()};
    }

    private void directRequest(String prefillUrl, String decodeUrl, int[] ids, long[] blockKeys, int max)
            throws Exception {
        long id = System.nanoTime() & Long.MAX_VALUE;
        var sampling = new WorkerMessages.Sampling(0f, 1f, 0, null, false);
        long t0 = System.nanoTime();
        var res = InternalJson.decode(
                post(decodeUrl + "/internal/reserve", new WorkerMessages.ReserveRequest(id, ids.length, max)),
                WorkerMessages.ReserveResponse.class);

        long t1 = System.nanoTime();
        var pr = InternalJson.decode(
                post(
                        prefillUrl + "/internal/prefill",
                        new WorkerMessages.PrefillTask(id, ids, blockKeys, 0, res.kv(), sampling)),
                WorkerMessages.PrefillResult.class);
        long t2 = System.nanoTime();
        // NDJSON, read to the end
        post(
                decodeUrl + "/internal/decode",
                new WorkerMessages.DecodeTask(id, pr.firstToken(), ids.length, max, sampling, sequenceKeys));
        if (Boolean.getBoolean("mooncakej.bench.trace"))
            System.err.printf(
                    "direct via %s: reserve %d us, prefill %d us, decode %d us%n",
                    decodeUrl, (t1 - t0) / 1000, (t2 - t1) / 1000, (System.nanoTime() - t2) / 1000);
    }

    /** The cluster secret of the cluster this benchmark starts (given to --port: MOONCAKEJ_CLUSTER_SECRET). */
    static final String SECRET = System.getenv()
            .getOrDefault(
                    "MOONCAKEJ_CLUSTER_SECRET", "bench-" + Long.toHexString(new SecureRandom().nextLong()) + "-secret");

    static final ClusterCredential CREDENTIAL = ClusterCredential.of(SECRET);

    private String post(String url, Object body) throws Exception {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(url))
                        .header(ClusterCredential.HEADER, CREDENTIAL.value())
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(InternalJson.encode(body)))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200)
            throw new IllegalStateException(url + " answered " + r.statusCode() + ": " + r.body());
        return r.body();
    }

    private String get(String url) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.ofString())
                .body();
    }

    private String promptOf(int tokens) throws Exception {
        try (GgufFile f = GgufFile.open(model)) {
            Tokenizer tok = Tokenizer.from(f);
            StringBuilder sb = new StringBuilder();
            int i = 0;
            while (tok.encode(sb.toString()).length < tokens) sb.append(i++ % 7 == 0 ? "Mooncake " : "cache ");
            return sb.toString();
        }
    }

    /** The generated small model (8 layers, width 512, Q8_0), made once under .cache/models. */
    static Path smallModel() throws IOException {
        Path m = Machine.projectRoot().resolve(".cache/models/mooncakej-small.gguf");
        if (!Files.exists(m)) {
            Files.createDirectories(m.getParent());
            System.err.println("generating the small model (8 layers, width 512, Q8_0)...");
            ModelGenerator.generate(ModelGenerator.Preset.SMALL, m);
        }
        return m;
    }

    static void waitUp(Process p) throws Exception {
        // not closed on return: the launcher keeps writing (a worker that exits, its shutdown), and a
        // closed pipe would end it with SIGPIPE, taking the whole cluster down
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line;
        ArrayDeque<String> last = new ArrayDeque<>(); // what it said before it gave up
        while ((line = r.readLine()) != null) {
            last.addLast(line);
            if (last.size() > 40) last.removeFirst();
            if (line.startsWith("Mooncake-J is up")) {
                Thread.ofVirtual()
                        .start(
                                () -> { // keep draining the launcher's output
                                    try (r) {
                                        String more;
                                        while ((more = r.readLine()) != null) {
                                            if (more.startsWith("mooncakej:")) System.err.println("\n" + more);
                                        }
                                    } catch (IOException ignored) {
                                        // ended
                                    }
                                });
                return;
            }
        }
        r.close();
        throw new IllegalStateException(
                "./mooncakej up did not come up (see .cache/logs/); it said:\n" + String.join("\n", last));
    }

    private static double ms(long micros) {
        return Math.round(micros / 100.0) / 10.0;
    }
}
