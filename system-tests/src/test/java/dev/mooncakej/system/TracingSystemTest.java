package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.completions.CompletionCreateParams;
import com.sun.net.httpserver.HttpServer;
import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.common.v1.AnyValue;
import io.opentelemetry.proto.common.v1.KeyValue;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Tracing across the three services (issue 29): the cluster exports its spans over OTLP/HTTP to a
 * receiver in this test, which decodes the protobuf payloads as any collector would. A request sent
 * with a client's {@code traceparent} is one trace rooted at that client span: the conductor's request
 * span (the scheduler's decision, the predicted and actual TTFT, the prefix hit by source) and under it
 * the prefill worker's span (queue, compute, KV transfer with path and bytes) and the decode worker's
 * (KV wait, steps with tokens), carried over the control channel. A prefill called over HTTP with a
 * {@code traceparent} header that fetches its prefix through the pool puts the fetch (blocks, bytes)
 * under its span. With no OTLP endpoint configured, nothing is exported (tracing is off by default).
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class TracingSystemTest {
    private static final Sampling GREEDY = new Sampling(0f, 1f, 0, null, false);
    private static final List<Span> SPANS = new CopyOnWriteArrayList<>();
    private static HttpServer receiver;
    /** What the receiver asks of an export (a collector's credential, sent as OTEL_EXPORTER_OTLP_HEADERS). */
    private static final String COLLECTOR_TOKEN = "Bearer trace-t0ken";

    private static final AtomicInteger refusedExports = new AtomicInteger();
    private static LocalCluster cluster;
    private static LlamaEngine reference;
    private static BlockKeys blockKeys;

    /** One exported span: ids in hex, the service that made it, its attributes. */
    record Span(String traceId, String spanId, String parent, String name, String service, Map<String, Object> attrs) {
        Object attr(String key) {
            return attrs.get(key);
        }
    }

    @BeforeAll
    static void up() throws Exception {
        receiver = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        receiver.createContext("/v1/traces", ex -> {
            // the collector's credential and gzip, as OTEL_EXPORTER_OTLP_HEADERS and _COMPRESSION ask
            if (!COLLECTOR_TOKEN.equals(ex.getRequestHeaders().getFirst("Authorization"))
                    || !"gzip".equals(ex.getRequestHeaders().getFirst("Content-Encoding"))) {
                refusedExports.incrementAndGet();
                ex.sendResponseHeaders(401, -1);
                ex.close();
                return;
            }
            try (InputStream in = new GZIPInputStream(ex.getRequestBody())) {
                collect(ExportTraceServiceRequest.parseFrom(in.readAllBytes()));
                ex.getResponseHeaders().add("Content-Type", "application/x-protobuf");
                ex.sendResponseHeaders(200, 0);
            } catch (Exception e) {
                ex.sendResponseHeaders(400, -1);
            } finally {
                ex.close();
            }
        });
        receiver.start();
        Path dir = Files.createTempDirectory("mooncakej-tracing");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        blockKeys = LocalCluster.blockKeys(model);
        cluster = LocalCluster.start(
                model,
                2,
                1,
                Map.of(
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        "http://127.0.0.1:" + receiver.getAddress().getPort(),
                        "OTEL_EXPORTER_OTLP_HEADERS",
                        "authorization=" + COLLECTOR_TOKEN.replace(" ", "%20"),
                        "OTEL_EXPORTER_OTLP_COMPRESSION",
                        "gzip",
                        // export within a moment (Spring Boot's key; the batch processor waits 5 s by default)
                        "MANAGEMENT_OPENTELEMETRY_TRACING_EXPORT_SCHEDULEDELAY",
                        "200ms",
                        "MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS",
                        "600"),
                "--kv-transports",
                "shm,tcp");
        reference = new LlamaEngine(LlamaEngine.Config.of(model));
    }

    @AfterAll
    static void down() {
        if (reference != null) reference.close();
        if (cluster != null) cluster.close();
        if (receiver != null) receiver.stop(0);
    }

    private static void collect(ExportTraceServiceRequest req) {
        HexFormat hex = HexFormat.of();
        for (var rs : req.getResourceSpansList()) {
            String service = String.valueOf(
                    attributes(rs.getResource().getAttributesList()).get("service.name"));
            for (var ss : rs.getScopeSpansList())
                for (var s : ss.getSpansList())
                    SPANS.add(new Span(
                            hex.formatHex(s.getTraceId().toByteArray()),
                            hex.formatHex(s.getSpanId().toByteArray()),
                            hex.formatHex(s.getParentSpanId().toByteArray()),
                            s.getName(),
                            service,
                            attributes(s.getAttributesList())));
        }
    }

    private static Map<String, Object> attributes(List<KeyValue> kvs) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (KeyValue kv : kvs) {
            AnyValue v = kv.getValue();
            m.put(
                    kv.getKey(),
                    switch (v.getValueCase()) {
                        case STRING_VALUE -> v.getStringValue();
                        case INT_VALUE -> v.getIntValue();
                        case DOUBLE_VALUE -> v.getDoubleValue();
                        case BOOL_VALUE -> v.getBoolValue();
                        default -> v.toString();
                    });
        }
        return m;
    }

    /** The spans of trace {@code traceId} once {@code done} holds for them (up to 30 s), or what arrived. */
    private static List<Span> trace(String traceId, Predicate<List<Span>> done) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            List<Span> t =
                    SPANS.stream().filter(s -> s.traceId().equals(traceId)).toList();
            if (done.test(t) || System.nanoTime() > until) return t;
            Thread.sleep(100);
        }
    }

    private static Span one(List<Span> spans, String name, String parent) {
        List<Span> found = spans.stream()
                .filter(s -> s.name().equals(name) && s.parent().equals(parent))
                .toList();
        assertThat(found).as("span %s under %s in %s", name, parent, spans).hasSize(1);
        return found.get(0);
    }

    private static boolean has(List<Span> spans, String... names) {
        return List.of(names).stream()
                .allMatch(n -> spans.stream().anyMatch(s -> s.name().equals(n)));
    }

    @Test
    void aClientsTraceHoldsTheConductorPrefillAndDecodeSpansWithTheirAttributes() throws Exception {
        String traceId = "4bf92f3577b34da6a3ce929d0e0e4736", client = "00f067aa0ba902b7";
        OpenAIClient openai = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("none")
                .build();
        var answer = openai.completions()
                .create(CompletionCreateParams.builder()
                        .model("mooncakej-tiny")
                        .prompt(LocalCluster.story(1))
                        .maxTokens(8)
                        .temperature(0.0)
                        .putAdditionalHeader("traceparent", "00-" + traceId + "-" + client + "-01")
                        .build());
        assertThat(answer.choices()).hasSize(1);

        List<Span> spans = trace(
                traceId,
                t -> has(
                        t,
                        "mooncakej.request",
                        "mooncakej.prefill",
                        "prefill.compute",
                        "kv.transfer",
                        "mooncakej.decode",
                        "decode.steps"));
        assertThat(refusedExports.get())
                .as("exports without the collector's credential (OTEL_EXPORTER_OTLP_HEADERS) or gzip")
                .isZero();
        // Spring's own HTTP server spans stay out (the request span is the request's server span): not
        // the completion's, not a scrape's; a moment for a last batch (exported every 200 ms here)
        LocalCluster.get(cluster.url() + "/actuator/prometheus");
        Thread.sleep(1500);
        assertThat(SPANS.stream()
                        .filter(s -> s.attrs().containsKey("uri") || s.attrs().containsKey("http.request.method"))
                        .map(s -> s.service() + " " + s.name())
                        .toList())
                .as("spans of Spring's HTTP observations")
                .isEmpty();
        // the client's span is the root: the conductor's request span is its child
        Span request = one(spans, "mooncakej.request", client);
        assertThat(request.service()).isEqualTo("mooncakej-conductor");
        assertThat(request.attrs())
                .containsEntry("mooncakej.admission", "admitted")
                .containsEntry("mooncakej.scheduler.policy", "kvcache-centric")
                .containsKeys(
                        "mooncakej.request_id",
                        "mooncakej.placed.prefill",
                        "mooncakej.placed.decode",
                        "mooncakej.ttft.predicted_seconds",
                        "mooncakej.ttft.actual_seconds",
                        "mooncakej.prefix.local_tokens",
                        "mooncakej.prefix.pool_tokens");
        assertThat((double) request.attr("mooncakej.ttft.actual_seconds")).isPositive();
        // the prefill worker's span, under the request's, carried over the control channel
        Span prefill = one(spans, "mooncakej.prefill", request.spanId());
        assertThat(prefill.service()).isEqualTo("mooncakej-prefill-worker");
        assertThat(prefill.attrs()).containsEntry("mooncakej.request_id", request.attr("mooncakej.request_id"));
        one(spans, "prefill.queue", prefill.spanId());
        Span compute = one(spans, "prefill.compute", prefill.spanId());
        assertThat((long) compute.attr("mooncakej.tokens.computed")).isPositive();
        Span kv = one(spans, "kv.transfer", prefill.spanId());
        assertThat(kv.attr("mooncakej.kv.path")).isIn("shm", "tcp");
        assertThat((long) kv.attr("mooncakej.kv.bytes")).isPositive();
        // the decode worker's span, under the request's too
        Span decode = one(spans, "mooncakej.decode", request.spanId());
        assertThat(decode.service()).isEqualTo("mooncakej-decode-worker");
        one(spans, "decode.kv_wait", decode.spanId());
        Span steps = one(spans, "decode.steps", decode.spanId());
        assertThat((long) steps.attr("mooncakej.tokens.generated")).isPositive();
        assertThat((long) steps.attr("mooncakej.decode.steps")).isPositive();

        // each service's log lines of the request carry its trace id
        assertThat(cluster.log("conductor")).as("the conductor's log").contains("trace=" + traceId + "] prefill on");
        assertThat(cluster.log("prefill-0") + cluster.log("prefill-1"))
                .as("the prefill workers' logs")
                .contains("trace=" + traceId + "] prefilled");
        assertThat(cluster.log("decode-0"))
                .as("the decode worker's log")
                .contains("trace=" + traceId + "] decoding reservation")
                .contains("trace=" + traceId + "] reservation");

        // a request without a traceparent is a trace of its own, rooted at the conductor
        openai.completions()
                .create(CompletionCreateParams.builder()
                        .model("mooncakej-tiny")
                        .prompt("a request of its own")
                        .maxTokens(4)
                        .build());
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        Span root = null;
        while (root == null && System.nanoTime() < until) {
            root = SPANS.stream()
                    .filter(s -> s.name().equals("mooncakej.request")
                            && !s.traceId().equals(traceId)
                            && s.parent().isEmpty())
                    .findFirst()
                    .orElse(null);
            Thread.sleep(100);
        }
        assertThat(root).as("a root request span of its own trace").isNotNull();
        String own = root.traceId(), rootId = root.spanId();
        List<Span> second = trace(own, t -> has(t, "mooncakej.prefill", "mooncakej.decode"));
        one(second, "mooncakej.prefill", rootId);
        one(second, "mooncakej.decode", rootId);
    }

    @Test
    void aPrefixFetchedThroughThePoolIsASpanUnderThePrefillOverHttp() throws Exception {
        int[] p = reference.tokenizer().encode(LocalCluster.story(7));
        long[] keys = blockKeys.keys(p);
        prefill(0, p, 0, null); // computed on worker 0, reported to the store master
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (cluster.heldReplicas(keys) < keys.length && System.nanoTime() < until) Thread.sleep(50);
        String traceId = "0af7651916cd43dd8448eb211c80319c", caller = "b7ad6b7169203331";
        PrefillResult fetched = prefill(1, p, keys.length, "00-" + traceId + "-" + caller + "-01");
        assertThat(fetched.fetchedTokens()).as("worker 1 fetched the prefix").isPositive();
        List<Span> spans = trace(traceId, t -> has(t, "mooncakej.prefill", "prefix.fetch", "kv.transfer"));
        Span prefill = one(spans, "mooncakej.prefill", caller);
        assertThat(prefill.attrs()).containsEntry("mooncakej.prefix.pool_tokens", (long) fetched.fetchedTokens());
        Span fetch = one(spans, "prefix.fetch", prefill.spanId());
        assertThat(fetch.attrs()).containsEntry("mooncakej.fetch.source", "pool");
        assertThat((long) fetch.attr("mooncakej.fetch.blocks")).isEqualTo(fetched.fetchedTokens() / 32);
        assertThat((long) fetch.attr("mooncakej.fetch.bytes")).isPositive();
        one(spans, "kv.transfer", prefill.spanId());
    }

    /** A prefill on worker {@code w} over HTTP (the conductor's call, made here), with a traceparent header. */
    private static PrefillResult prefill(int w, int[] ids, int poolPrefixBlocks, String traceparent) throws Exception {
        long id = System.nanoTime() & Long.MAX_VALUE;
        ReserveResponse res = InternalJson.decode(
                ok(LocalCluster.post(
                        cluster.decodeUrl(0) + "/internal/reserve",
                        InternalJson.encode(new ReserveRequest(id, ids.length, 1)))),
                ReserveResponse.class);
        HttpRequest.Builder b = LocalCluster.request(cluster.prefillUrl(w) + "/internal/prefill")
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(InternalJson.encode(
                        new PrefillTask(id, ids, blockKeys.keys(ids), poolPrefixBlocks, res.kv(), GREEDY))));
        if (traceparent != null) b.header("traceparent", traceparent);
        PrefillResult pr = InternalJson.decode(
                ok(LeakCheckingClient.create().send(b.build(), HttpResponse.BodyHandlers.ofString())),
                PrefillResult.class);
        LeakCheckingClient.create() // the reservation is not decoded here: released
                .send(
                        LocalCluster.request(cluster.decodeUrl(0) + "/internal/reservations/" + id)
                                .DELETE()
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
        return pr;
    }

    private static String ok(HttpResponse<String> r) {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return r.body();
    }
}
