package dev.mooncakej.cli;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.json.JsonMapper;

/**
 * Algorithm 1's fetch branch, measured: the time to first token of a prompt whose first
 * {@code --cached-tokens} tokens sit in another prefill worker's cache, fetched through the KV pool,
 * against the same-length prompt computed from scratch on the same worker, alternating in one run.
 * Starts {@code ./mooncakej up --prefill 2 --decode 1} on the {@code small} model and drives the
 * workers directly with the conductor's messages (reserve, prefill, decode of one token), so the
 * choice of worker is the benchmark's: worker 0 computes each prefix first, worker 1 then fetches it.
 */
@Command(
        name = "fetch",
        description = "TTFT of a prompt whose prefix is fetched from another worker through the KV pool, beside the "
                + "same prompt recomputed, same run.")
final class FetchBench implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @Option(names = "--prompt-tokens", defaultValue = "2048")
    int promptTokens;

    @Option(names = "--cached-tokens", defaultValue = "1792", description = "leading tokens cached on the other worker")
    int cachedTokens;

    @Option(names = "--trials", defaultValue = "7", description = "fetched and recomputed prompts each (median)")
    int trials;

    @Option(names = "--port", defaultValue = "18700", description = "the cluster's conductor port (it is started here)")
    int port;

    @Option(names = "--kv-transports", defaultValue = "shm,tcp")
    String transports;

    @Option(names = "--model", description = "GGUF model (default: the generated small model)")
    Path model;

    @Option(names = "--json")
    boolean json;

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final BlockKeys keys = new BlockKeys("fetch-bench", 32);
    private static final WorkerMessages.Sampling GREEDY = new WorkerMessages.Sampling(0f, 1f, 0, null, false);

    @Override
    public void run() {
        if (cachedTokens < 32 || cachedTokens >= promptTokens || cachedTokens % 32 != 0)
            throw new IllegalArgumentException("--cached-tokens " + cachedTokens
                    + ": expected a multiple of 32 (the block size) below --prompt-tokens");
        Process cluster = null;
        try {
            if (model == null) model = ServeBench.smallModel();
            try (var f = GgufFile.open(model)) {
                vocab = Tokenizer.from(f).vocabSize();
            }
            cluster = ClusterLauncher.start(
                    port, model, "--prefill", "2", "--decode", "1", "--kv-transports", transports);
            SplittableRandom rnd = new SplittableRandom(7);
            double[] fetched = new double[trials], recomputed = new double[trials];
            int[] fetchedTokens = new int[trials];
            for (int t = -2; t < trials; t++) { // two warm-up rounds (JIT on both workers)
                int[] prefix = ids(rnd, cachedTokens);
                prefill(0, concat(prefix, ids(rnd, promptTokens - cachedTokens)), 0); // worker 0 holds the prefix
                awaitStored(keys.keys(prefix));
                int[] prompt = concat(prefix, ids(rnd, promptTokens - cachedTokens));
                long t0 = System.nanoTime();
                var f = prefill(1, prompt, cachedTokens / 32);
                double fs = (System.nanoTime() - t0) / 1e9;
                t0 = System.nanoTime();
                var r = prefill(1, ids(rnd, promptTokens), 0); // nobody holds it
                double rs = (System.nanoTime() - t0) / 1e9;
                if (r.cachedTokens() != 0) throw new IllegalStateException("a fresh prompt was cached");
                System.err.printf(
                        "trial %d: fetched %d tokens, %.1f ms; recomputed %.1f ms%n",
                        t, f.fetchedTokens(), fs * 1e3, rs * 1e3);
                if (t < 0) continue;
                fetched[t] = fs;
                recomputed[t] = rs;
                fetchedTokens[t] = f.fetchedTokens();
            }
            Arrays.sort(fetched);
            Arrays.sort(recomputed);
            double f50 = fetched[trials / 2], r50 = recomputed[trials / 2];
            Map<String, Object> out = new LinkedHashMap<>();
            out.put(
                    "command",
                    "./mooncakej bench fetch --prompt-tokens " + promptTokens + " --cached-tokens " + cachedTokens
                            + " --trials " + trials + " --kv-transports " + transports);
            out.put("machine", Machine.describe());
            out.put("model", model.toString());
            out.put("fetched_tokens_min", Arrays.stream(fetchedTokens).min().orElse(0));
            out.put("ttft_fetched_p50_ms", Math.round(f50 * 1e4) / 10.0);
            out.put("ttft_recomputed_p50_ms", Math.round(r50 * 1e4) / 10.0);
            out.put("ratio_fetched_to_recomputed", Math.round(f50 / r50 * 1000) / 1000.0);
            if (json) System.out.println(JSON.writeValueAsString(out));
            else out.forEach((k, v) -> System.out.printf("%-30s %s%n", k, v));
        } catch (Exception e) {
            throw new IllegalStateException("fetch benchmark failed: " + e.getMessage(), e);
        } finally {
            ClusterLauncher.stop(cluster);
        }
    }

    private int vocab;

    private int[] ids(SplittableRandom rnd, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = 3 + rnd.nextInt(vocab - 3);
        return out;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** Until the store master lists every block (the holder reports its cache every 200 ms). */
    private void awaitStored(long[] blockKeys) throws Exception {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < until) {
            var got = InternalJson.decode(
                    post("http://127.0.0.1:" + port + "/internal/store/get", new WorkerMessages.StoreGet(blockKeys)),
                    WorkerMessages.StoreReplicas.class);
            if (got.replicas().stream().noneMatch(List::isEmpty)) return;
            Thread.sleep(50);
        }
        throw new IllegalStateException("the store master did not list the prefix within 10 s");
    }

    /** Reserve, prefill on worker {@code w} (telling it how many leading blocks the pool holds), decode one token. */
    private WorkerMessages.PrefillResult prefill(int w, int[] ids, int poolBlocks) throws Exception {
        long id = System.nanoTime() & Long.MAX_VALUE;
        String decode = "http://127.0.0.1:" + (port + 20);
        var res = InternalJson.decode(
                post(decode + "/internal/reserve", new WorkerMessages.ReserveRequest(id, ids.length, 1)),
                WorkerMessages.ReserveResponse.class);
        var pr = InternalJson.decode(
                post(
                        "http://127.0.0.1:" + (port + 10 + w) + "/internal/prefill",
                        new WorkerMessages.PrefillTask(id, ids, keys.keys(ids), poolBlocks, res.kv(), GREEDY)),
                WorkerMessages.PrefillResult.class);
        http.send(
                HttpRequest.newBuilder(URI.create(decode + "/internal/reservations/" + id))
                        .header(ClusterCredential.HEADER, ServeBench.CREDENTIAL.value())
                        .DELETE()
                        .build(),
                HttpResponse.BodyHandlers.discarding()); // the KV arrived; no decode needed for TTFT
        return pr;
    }

    private String post(String url, Object body) throws Exception {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(url))
                        .timeout(Duration.ofSeconds(120))
                        .header(ClusterCredential.HEADER, ServeBench.CREDENTIAL.value())
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(InternalJson.encode(body)))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2)
            throw new IllegalStateException(url + " answered " + r.statusCode() + ": " + r.body());
        return r.body();
    }
}
