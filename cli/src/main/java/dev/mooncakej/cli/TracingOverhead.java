package dev.mooncakej.cli;

import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code ./mooncakej bench serve --tracing}: what tracing every request costs. Two clusters run side by
 * side, one with tracing off (the default) and one exporting every request's spans (100% sampling) over
 * OTLP/HTTP to a sink in this process that reads and drops them, as a collector would take them; the
 * same request goes to both in a random order each round, and each round's difference cancels what
 * drifts on a shared machine. Reported: each cluster's p50, the ratio (target: on at most 1.1x off),
 * and the spans' export volume.
 */
final class TracingOverhead {
    private TracingOverhead() {}

    static Map<String, Object> measure(
            HttpClient http, Path model, int offPort, int onPort, String prompt, int requests, int warmup)
            throws Exception {
        AtomicLong exports = new AtomicLong(), exportedBytes = new AtomicLong();
        HttpServer sink = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        sink.createContext("/v1/traces", ex -> {
            try (InputStream in = ex.getRequestBody()) {
                exportedBytes.addAndGet(in.readAllBytes().length);
                exports.incrementAndGet();
                ex.sendResponseHeaders(200, -1);
            } finally {
                ex.close();
            }
        });
        sink.start();
        Process off = null, on = null;
        try {
            off = ClusterLauncher.start(offPort, model);
            on = ClusterLauncher.start(
                    onPort,
                    model,
                    Map.of(
                            "OTEL_EXPORTER_OTLP_ENDPOINT",
                            "http://127.0.0.1:" + sink.getAddress().getPort()));
            String[] bases = {"http://127.0.0.1:" + offPort, "http://127.0.0.1:" + onPort};
            String body = ServeBench.eightTokens(http, bases[0], prompt);
            long[][] t = new long[2][requests];
            Random order = new Random(7);
            System.err.printf(
                    "tracing overhead: %d rounds (after %d warm-up), off and on alternating%n", requests, warmup);
            for (int i = -warmup; i < requests; i++) {
                List<Integer> paths = new ArrayList<>(List.of(0, 1));
                Collections.shuffle(paths, order);
                for (int p : paths) {
                    Thread.sleep(20);
                    long t0 = System.nanoTime();
                    complete(http, bases[p], body);
                    if (i >= 0) t[p][i] = System.nanoTime() - t0;
                }
                if (i > 0 && i % 25 == 0) System.err.printf("  %d/%d rounds%n", i, requests);
            }
            long[] paired = new long[requests];
            for (int i = 0; i < requests; i++) paired[i] = t[1][i] - t[0][i];
            Arrays.sort(paired);
            Arrays.sort(t[0]);
            Arrays.sort(t[1]);
            double offMs = t[0][requests / 2] / 1e6, onMs = t[1][requests / 2] / 1e6;
            Thread.sleep(6000); // the last batch of spans (exported every 5 s)
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("requests", requests);
            o.put("tracing_off_p50_ms", Math.round(offMs * 100) / 100.0);
            o.put("tracing_on_p50_ms", Math.round(onMs * 100) / 100.0);
            o.put("on_to_off_p50", Math.round(onMs / offMs * 1000) / 1000.0);
            o.put("paired_on_minus_off_p50_ms", Math.round(paired[requests / 2] / 1e4) / 100.0);
            o.put("otlp_exports", exports.get());
            o.put("otlp_bytes_per_request", exportedBytes.get() / Math.max(1, requests + warmup));
            o.put("target_ratio", 1.1);
            return o;
        } finally {
            ClusterLauncher.stop(on);
            ClusterLauncher.stop(off);
            sink.stop(0);
        }
    }

    private static void complete(HttpClient http, String base, String body) throws Exception {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200)
            throw new IllegalStateException(base + " answered " + r.statusCode() + ": " + r.body());
    }
}
