package dev.mooncakej.cli;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.simulator.TraceRequest;
import dev.mooncakej.simulator.Traces;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code ./mooncakej replay}: drives a live cluster with a trace, as {@code simulate} drives the
 * simulator. Each request arrives at its trace time (divided by {@code --speed}, multiplied by {@code
 * --time-scale}: the cluster's {@code --sim-time-scale}, so the load is the trace's in model time);
 * its prompt is the concatenation of one deterministic block of token ids per hash id (equal ids,
 * equal prefixes: the live prefix cache sees the trace's reuse), {@code 512 x --length-scale} tokens
 * each, cut to the input length; it asks for the output length. Streams are timed at the client; the
 * times are divided by the time scale, and the same JSON fields as {@code simulate} are printed.
 */
@Command(
        name = "replay",
        description = "Replay a Mooncake trace against a live cluster (typically ./mooncakej up --engine simulated)")
final class ReplayCommand implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    /** Tokens per hash id in the paper's traces. */
    static final int TRACE_BLOCK_TOKENS = 512;

    @Option(names = "--trace", required = true, description = "Mooncake trace JSONL")
    Path trace;

    @Option(names = "--target", required = true, description = "the conductor, e.g. http://127.0.0.1:8000")
    String target;

    @Option(names = "--requests", defaultValue = "0", description = "the first N requests of the trace (0: all)")
    int requests;

    @Option(
            names = "--offset",
            defaultValue = "0",
            description = "skip the first N requests; arrivals count from the first one replayed")
    int offset;

    @Option(names = "--speed", defaultValue = "1", description = "arrivals this many times faster than the trace")
    double speed;

    @Option(
            names = "--time-scale",
            defaultValue = "1",
            description = "the cluster's --sim-time-scale: arrivals are scaled by it, measured times divided by it")
    double timeScale;

    @Option(
            names = "--length-scale",
            defaultValue = "1",
            description = "prompt and output lengths scaled by this (a hash id is 512 x this tokens)")
    double lengthScale;

    @Option(
            names = "--max-input",
            defaultValue = "0",
            description = "prompts cut to at most this many tokens after scaling (0: none), e.g. to fit the model's"
                    + " context; simulate takes the same option")
    int maxInput;

    @Option(names = "--ttft-slo", defaultValue = "30s")
    String ttftSlo;

    @Option(names = "--tbt-slo", defaultValue = "100ms")
    String tbtSlo;

    @Option(names = "--model", description = "model name to ask for (default: the first of GET /v1/models)")
    String model;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    /** The first few client-side failures, reported with the result. */
    private final List<String> problems = new CopyOnWriteArrayList<>();

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** One request's outcome, as the client saw it (model seconds). */
    record Outcome(int status, double ttft, double tbt, int promptTokens, int cachedTokens, boolean complete) {}

    @Override
    public void run() {
        if (!(timeScale > 0)) throw new IllegalArgumentException("--time-scale " + timeScale + ": expected > 0");
        if (!(lengthScale > 0 && lengthScale <= 1))
            throw new IllegalArgumentException("--length-scale " + lengthScale + ": expected a factor in (0, 1]");
        if (maxInput < 0) throw new IllegalArgumentException("--max-input " + maxInput + ": expected >= 0 (0: none)");
        URI base = URI.create(target.endsWith("/") ? target.substring(0, target.length() - 1) : target);
        if (!"http".equals(base.getScheme()) && !"https".equals(base.getScheme()))
            throw new IllegalArgumentException("--target " + target + ": expected http://host:port");
        List<TraceRequest> reqs = Traces.window(Traces.read(trace, speed), offset, requests);
        double ttftLimit = SimulateCommand.seconds(ttftSlo, "--ttft-slo");
        double tbtLimit = SimulateCommand.seconds(tbtSlo, "--tbt-slo");
        try {
            String name = model != null ? model : firstModel(base);
            String secret = System.getenv("MOONCAKEJ_CLUSTER_SECRET");
            ClusterCredential cred = secret == null || secret.isBlank() ? null : ClusterCredential.of(secret);
            JsonNode leader = cred == null ? null : JSON.readTree(Http.get(http, base + "/internal/leader", cred));
            double busyBefore = prefillBusy(leader);
            int blockTokens = Math.max(1, (int) Math.round(TRACE_BLOCK_TOKENS * lengthScale));
            ConcurrentLinkedQueue<Outcome> outcomes = new ConcurrentLinkedQueue<>();
            List<double[]> decodeLoads = new ArrayList<>();
            CountDownLatch done = new CountDownLatch(reqs.size());
            AtomicInteger started = new AtomicInteger();
            long t0 = System.nanoTime();
            Thread sampler = Thread.ofVirtual().start(() -> sampleDecodeLoad(leader, cred, decodeLoads, done));
            for (TraceRequest r : reqs) {
                long at = t0 + (long) (r.arrival() * timeScale * 1e9);
                long wait = at - System.nanoTime();
                if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                started.incrementAndGet();
                Thread.ofVirtual().start(() -> {
                    try {
                        outcomes.add(send(base, name, r, blockTokens));
                    } catch (Exception e) {
                        if (problems.size() < 5) problems.add(e.toString());
                        outcomes.add(new Outcome(-1, 0, 0, 0, 0, false));
                    } finally {
                        done.countDown();
                    }
                });
                if (!json)
                    System.err.printf("\rreplay: %d / %d sent, %d ended", started.get(), reqs.size(), outcomes.size());
            }
            while (!done.await(1, TimeUnit.SECONDS))
                if (!json)
                    System.err.printf("\rreplay: %d / %d sent, %d ended", reqs.size(), reqs.size(), outcomes.size());
            double wall = (System.nanoTime() - t0) / 1e9;
            sampler.join(3000);
            if (!json) System.err.println();
            double busy = prefillBusy(leader) - busyBefore;
            JsonNode est = cred == null ? null : JSON.readTree(Http.get(http, base + "/internal/estimators", cred));
            System.out.println(render(report(
                    List.copyOf(outcomes), reqs.size(), wall, busy, leader, est, decodeLoads, ttftLimit, tbtLimit)));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("replay interrupted");
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(
                    "replay: cannot reach " + target + " (" + e + "); is the cluster up (./mooncakej up --engine"
                            + " simulated)?",
                    e);
        }
    }

    private String render(Map<String, Object> out) {
        if (json) return JSON.writeValueAsString(out);
        StringBuilder sb = new StringBuilder();
        out.forEach((k, v) -> sb.append(String.format("%-28s %s%n", k, v)));
        return sb.toString();
    }

    /** The prompt of a trace request: one deterministic block of ids per hash id, cut to its input length. */
    static int[] prompt(
            TraceRequest r, int blockTokens, double lengthScale, int maxInput, int vocabFrom, int vocabSize) {
        int n = scaledInput(r.inputTokens(), lengthScale, maxInput);
        int[] ids = new int[n];
        SplittableRandom rnd = null;
        for (int i = 0; i < n; i++) {
            if (i % blockTokens == 0) {
                int b = i / blockTokens;
                // a hash id's block is the same in every request; past the ids, the request's own text
                long key = b < r.blocks().length ? r.blocks()[b] : -1 - ((long) r.index() << 20 | b);
                rnd = new SplittableRandom(key * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L);
            }
            ids[i] = vocabFrom + rnd.nextInt(vocabSize);
        }
        return ids;
    }

    private Outcome send(URI base, String name, TraceRequest r, int blockTokens) throws Exception {
        // the request's own text keyed by its place in the whole trace: windows at other offsets do not share it
        TraceRequest whole =
                new TraceRequest(r.index() + offset, r.arrival(), r.inputTokens(), r.outputTokens(), r.blocks());
        int[] ids = prompt(whole, blockTokens, lengthScale, maxInput, 16, 200); // ids every model here has
        int maxTokens = Math.max(1, (int) Math.round(r.outputTokens() * lengthScale));
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("model", name);
        body.put("prompt", ids);
        body.put("max_tokens", maxTokens);
        body.put("temperature", 0);
        body.put("stream", true);
        body.put("stream_options", Map.of("include_usage", true));
        long sent = System.nanoTime();
        HttpResponse<InputStream> resp = http.send(
                HttpRequest.newBuilder(base.resolve("/v1/completions"))
                        .timeout(Duration.ofMinutes(30))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)))
                        .build(),
                HttpResponse.BodyHandlers.ofInputStream());
        if (resp.statusCode() != 200) {
            String err = new String(resp.body().readAllBytes(), StandardCharsets.UTF_8);
            if (resp.statusCode() != 429 && problems.size() < 5)
                problems.add("HTTP " + resp.statusCode() + ": " + err.substring(0, Math.min(300, err.length())));
            return new Outcome(resp.statusCode(), 0, 0, ids.length, 0, false);
        }
        List<Long> at = new ArrayList<>();
        int cached = 0;
        boolean finished = false;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(resp.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (!line.startsWith("data:")) continue;
                String data = line.substring(5).trim();
                if (data.equals("[DONE]")) break;
                JsonNode ev = JSON.readTree(data);
                if (ev.has("error")) {
                    if (problems.size() < 5) problems.add("error event: " + data);
                    return new Outcome(500, 0, 0, ids.length, 0, false);
                }
                JsonNode choices = ev.path("choices");
                if (choices.isArray() && !choices.isEmpty()) {
                    at.add(System.nanoTime());
                    if (!choices.get(0).path("finish_reason").isNull()
                            && !choices.get(0).path("finish_reason").isMissingNode()) finished = true;
                }
                JsonNode u = ev.path("usage");
                if (u.isObject())
                    cached = u.path("prompt_tokens_details")
                            .path("cached_tokens")
                            .asInt();
            }
        }
        if (at.isEmpty()) return new Outcome(500, 0, 0, ids.length, 0, false);
        double ttft = (at.get(0) - sent) / 1e9 / timeScale;
        return new Outcome(200, ttft, tbt(at) / timeScale, ids.length, cached, finished);
    }

    /** A prompt length scaled by {@code lengthScale} and cut to {@code maxInput} (0: no cut), at least 2. */
    static int scaledInput(int inputTokens, double lengthScale, int maxInput) {
        int n = Math.max(2, (int) Math.round(inputTokens * lengthScale));
        return maxInput > 0 ? Math.min(n, Math.max(2, maxInput)) : n;
    }

    /** A request's TBT as the simulator defines it: the mean of its largest 10% of token gaps. */
    static double tbt(List<Long> at) {
        if (at.size() < 2) return 0;
        double[] gaps = new double[at.size() - 1];
        for (int i = 1; i < at.size(); i++) gaps[i - 1] = (at.get(i) - at.get(i - 1)) / 1e9;
        Arrays.sort(gaps);
        int k = Math.max(1, gaps.length / 10);
        double s = 0;
        for (int i = gaps.length - k; i < gaps.length; i++) s += gaps[i];
        return s / k;
    }

    private Map<String, Object> report(
            List<Outcome> all,
            int total,
            double wall,
            double busy,
            JsonNode leader,
            JsonNode est,
            List<double[]> decodeLoads,
            double ttftLimit,
            double tbtLimit) {
        List<Outcome> ok = all.stream().filter(o -> o.status() == 200).toList();
        int rejected = (int) all.stream().filter(o -> o.status() == 429).count();
        double[] ttfts = ok.stream().mapToDouble(Outcome::ttft).sorted().toArray();
        double[] tbts = ok.stream().mapToDouble(Outcome::tbt).sorted().toArray();
        int good = (int) ok.stream()
                .filter(o -> o.complete() && o.ttft() <= ttftLimit && o.tbt() <= tbtLimit)
                .count();
        long prompt = ok.stream().mapToLong(Outcome::promptTokens).sum();
        long cached = ok.stream().mapToLong(Outcome::cachedTokens).sum();
        int bt = est == null ? 16 : est.path("block_tokens").asInt(16);
        long promptBlocks = ok.stream().mapToLong(o -> o.promptTokens() / bt).sum();
        long cachedBlocks = ok.stream().mapToLong(o -> o.cachedTokens() / bt).sum();
        int prefillWorkers = leader == null ? 0 : leader.path("prefill").size();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(
                "system",
                "live " + target
                        + (leader == null
                                ? ""
                                : " (" + prefillWorkers + "P+"
                                        + leader.path("decode").size() + "D)"));
        m.put("policy", est == null ? null : est.path("policy").asString());
        m.put("admission", est == null ? null : est.path("admission").asString());
        m.put("requests", total);
        m.put("completed", ok.size());
        m.put("rejected", rejected);
        m.put("rejected_at_arrival", rejected); // the live conductor reserves decode KV before prefill
        m.put("rejected_after_prefill", 0);
        m.put("errors", all.size() - ok.size() - rejected);
        Map<String, Long> statuses = new TreeMap<>();
        for (Outcome o : all) statuses.merge(String.valueOf(o.status()), 1L, Long::sum);
        m.put("status_counts", statuses);
        if (!problems.isEmpty()) m.put("first_errors", problems);
        m.put("ttft_mean_s", round(Arrays.stream(ttfts).average().orElse(Double.NaN)));
        m.put("ttft_p90_s", round(quantile(ttfts, 0.9)));
        m.put("tbt_p90_s", round(quantile(tbts, 0.9)));
        m.put("effective_request_ratio", round(total == 0 ? 0 : (double) good / total));
        m.put("goodput", good);
        m.put("wasted_prefill_seconds", 0.0); // no prefill runs before its decode KV is reserved
        m.put("decode_load_std", decodeLoads.isEmpty() ? null : round(meanStd(decodeLoads)));
        m.put("prefix_hit_ratio_blocks", round(promptBlocks == 0 ? 0 : (double) cachedBlocks / promptBlocks));
        m.put("prefix_hit_ratio_tokens", round(prompt == 0 ? 0 : (double) cached / prompt));
        m.put("prefill_busy_seconds", leader == null ? null : round(busy / timeScale));
        m.put(
                "prefill_utilisation",
                leader == null || prefillWorkers == 0 ? null : round(busy / (prefillWorkers * wall)));
        m.put("simulated_seconds", round(wall / timeScale));
        if (est != null) m.put("estimators", est);
        if (leader == null)
            m.put("note", "set MOONCAKEJ_CLUSTER_SECRET to the cluster's secret for the worker-side fields");
        return m;
    }

    private static double quantile(double[] sorted, double q) {
        if (sorted.length == 0) return Double.NaN;
        return sorted[Math.min(sorted.length - 1, (int) Math.floor(q * sorted.length))];
    }

    /** The mean over samples of the standard deviation of the decode workers' loads. */
    private static double meanStd(List<double[]> samples) {
        double s = 0;
        for (double[] l : samples) {
            double mean = Arrays.stream(l).average().orElse(0);
            s += Math.sqrt(
                    Arrays.stream(l).map(x -> (x - mean) * (x - mean)).average().orElse(0));
        }
        return s / samples.size();
    }

    private static double round(double v) {
        return Double.isNaN(v) ? Double.NaN : Math.round(v * 10000) / 10000.0;
    }

    /** Every second: each decode worker's KV in use over its capacity. */
    private void sampleDecodeLoad(JsonNode leader, ClusterCredential cred, List<double[]> out, CountDownLatch done) {
        if (leader == null) return;
        List<String> urls = new ArrayList<>();
        leader.path("decode").forEach(u -> urls.add(u.asString()));
        if (urls.size() < 2) return;
        try {
            while (!done.await(1, TimeUnit.SECONDS)) {
                double[] l = new double[urls.size()];
                for (int i = 0; i < l.length; i++) {
                    JsonNode st = JSON.readTree(Http.get(http, urls.get(i) + "/internal/status", cred));
                    l[i] = st.path("usedBlocks").asDouble()
                            / Math.max(1, st.path("capacityBlocks").asDouble());
                }
                synchronized (out) {
                    out.add(l);
                }
            }
        } catch (Exception e) {
            // a worker went away: the samples so far stand
        }
    }

    private static final Pattern PREFILL_SUM =
            Pattern.compile("(?m)^mooncakej_prefill_time_seconds_sum(\\{[^}]*})? ([0-9.E+-]+)$");

    /** The prefill workers' summed compute time so far (their own timer), 0 without the worker list. */
    private double prefillBusy(JsonNode leader) throws Exception {
        if (leader == null) return 0;
        double s = 0;
        for (JsonNode u : leader.path("prefill")) {
            Matcher m = PREFILL_SUM.matcher(Http.get(http, u.asString() + "/actuator/prometheus"));
            if (m.find()) s += Double.parseDouble(m.group(2));
        }
        return s;
    }

    private String firstModel(URI base) throws Exception {
        String id = JSON.readTree(Http.get(http, base + "/v1/models"))
                .path("data")
                .path(0)
                .path("id")
                .asString();
        if (id == null || id.isEmpty())
            throw new IllegalStateException(base + "/v1/models lists no model; give --model NAME");
        return id;
    }
}
