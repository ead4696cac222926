package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.ControlFrame;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The service's edges as an attacker or a careless client meets them ({@code ./mooncakej up}, a
 * 64 KiB body limit). The internal plane: every route
 * each running app has registered (read from its own route listing, so a route added later cannot
 * be missed) that belongs to the internal plane refuses a caller without the cluster credential, and
 * one with a wrong one; the listing itself is internal; the secret is on no process's command line
 * and in no log of any process {@code up} starts. The OpenAI endpoint: a body over the limit gets 413
 * (declared or not), each known but unsupported parameter 400 naming it, special-token text in a
 * message is tokenized as text, and a route or method not served gets an OpenAI error body. The
 * control channel (a WebSocket on {@code /internal/channel}): the conductor's worker calls go over it,
 * not the HTTP routes; it refuses an upgrade without the credential, answers like the routes and closes
 * on a frame that does not parse while the worker keeps serving.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class EdgeSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = LeakCheckingClient.wrap(
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build());
    private static LocalCluster cluster;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-plane");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(model, 1, 1, Map.of("MOONCAKEJ_CONDUCTOR_MAXBODYBYTES", "65536"));
        try (var f = GgufFile.open(model)) {
            tokenizer = Tokenizer.from(f);
        }
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    private record Route(String method, String pattern) {}

    /** Every route an app registered, from its own listing (Actuator's mappings, read with the credential). */
    private static List<Route> routes(String base) throws Exception {
        HttpResponse<String> r = HTTP.send(
                HttpRequest.newBuilder(URI.create(base + "/actuator/mappings"))
                        .header(ClusterCredential.HEADER, LocalCluster.credential.value())
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("the route listing with the credential").isEqualTo(200);
        List<Route> out = new ArrayList<>();
        collect(JSON.readTree(r.body()), out);
        return out;
    }

    private static void collect(JsonNode n, List<Route> out) {
        if (n.isObject()
                && n.path("predicate").isString()
                && n.path("predicate").asString().startsWith("/")
                && n.path("details").isNull()) // a URL-mapped handler, such as the control channel's WebSocket
        out.add(new Route("GET", n.get("predicate").asString()));
        if (n.isObject() && n.has("requestMappingConditions")) {
            JsonNode c = n.get("requestMappingConditions");
            List<String> methods = new ArrayList<>();
            c.path("methods").forEach(m -> methods.add(m.asString()));
            if (methods.isEmpty()) methods.add("GET");
            for (JsonNode p : c.path("patterns")) for (String m : methods) out.add(new Route(m, p.asString()));
        }
        for (JsonNode child : n) collect(child, out);
    }

    private static int call(String base, Route route, String credential) throws Exception {
        String path = route.pattern().replaceAll("\\{[^}]+}", "1");
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
                .timeout(Duration.ofSeconds(10))
                .header("Content-Type", "application/json")
                .method(route.method(), HttpRequest.BodyPublishers.ofString("{}"));
        if (credential != null) b.header(ClusterCredential.HEADER, credential);
        try {
            return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString()).statusCode();
        } catch (HttpTimeoutException e) {
            throw new AssertionError(
                    route.method() + " " + base + path + (credential == null ? " without" : " with")
                            + " a credential: no answer in 10 s on a kept-alive connection (see KeepAliveReads)",
                    e);
        }
    }

    @Test
    void everyInternalRouteOfEveryAppRefusesACallerWithoutTheCredential() throws Exception {
        String wrong = ClusterCredential.of("some-other-cluster-secret").value();
        int internal = 0;
        for (String base : List.of(cluster.url(), cluster.prefillUrl(0), cluster.decodeUrl(0))) {
            List<Route> routes = routes(base);
            assertThat(routes).as("routes of %s", base).isNotEmpty();
            for (Route r : routes) {
                if (!r.pattern().startsWith("/internal")) continue;
                internal++;
                assertThat(call(base, r, null))
                        .as("%s %s%s without the credential", r.method(), base, r.pattern())
                        .isEqualTo(401);
                assertThat(call(base, r, wrong))
                        .as("%s %s%s with another cluster's credential", r.method(), base, r.pattern())
                        .isEqualTo(401);
            }
            HttpResponse<String> listing = HTTP.send(
                    HttpRequest.newBuilder(URI.create(base + "/actuator/mappings"))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(listing.statusCode())
                    .as("the route listing of %s without the credential", base)
                    .isEqualTo(401);
            assertThat(listing.body()).contains(ClusterCredential.HEADER).doesNotContain("/internal/");
            // the credential opens them: a status read works
            assertThat(LocalCluster.get(base + (base.equals(cluster.url()) ? "/internal/leader" : "/internal/status")))
                    .contains("{");
        }
        assertThat(internal).as("internal routes found across the three apps").isGreaterThanOrEqualTo(17);
        // the public API still answers without it
        HttpResponse<String> models = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(models.statusCode()).isEqualTo(200);
        // one model by name (OpenAI's retrieve-model), and a name not served: 404 model_not_found
        String name = JSON.readTree(models.body()).get("data").get(0).get("id").asString();
        HttpResponse<String> one = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/models/" + name))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(one.statusCode()).isEqualTo(200);
        assertThat(JSON.readTree(one.body()).get("id").asString()).isEqualTo(name);
        assertThat(JSON.readTree(one.body()).get("object").asString()).isEqualTo("model");
        HttpResponse<String> none = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/models/no-such-model"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(none.statusCode()).isEqualTo(404);
        assertThat(JSON.readTree(none.body()).path("error").path("code").asString())
                .isEqualTo("model_not_found");
        assertThat(none.body()).contains("no-such-model");
    }

    /**
     * The forms of one path that routing could read as the path itself, none of them the path as
     * written: percent-encoded letters (lower- and upper-case hex), encoded and doubly encoded
     * slashes, double encoding, {@code ;x} parameters, {@code //}, {@code /./}, {@code /x/../}, a
     * trailing slash, mixed case, a backslash.
     */
    static List<String> encodings(String path) {
        String[] seg = path.substring(1).split("/");
        String first = seg[0], rest = path.substring(1 + first.length());
        String hex = String.format("%%%02x", (int) first.charAt(0)), hexUpper = hex.toUpperCase(Locale.ROOT);
        String lastSeg = seg[seg.length - 1];
        String lastEncoded = path.substring(0, path.length() - lastSeg.length())
                + String.format("%%%02X", (int) lastSeg.charAt(0))
                + lastSeg.substring(1);
        List<String> out = new ArrayList<>(List.of(
                "/" + hex + first.substring(1) + rest,
                "/" + hexUpper + first.substring(1) + rest,
                lastEncoded,
                "/%25" + hex.substring(1) + first.substring(1) + rest,
                "/" + first + ";x" + rest,
                path + ";x=1",
                "/" + path,
                "/./" + path.substring(1),
                "/x/../" + path.substring(1),
                path + "/",
                "/" + first.toUpperCase(Locale.ROOT) + rest,
                "/" + Character.toUpperCase(first.charAt(0)) + first.substring(1) + rest,
                "/" + first + "\\" + rest.substring(Math.min(1, rest.length()))));
        if (!rest.isEmpty()) {
            out.add("/" + first + "%2F" + rest.substring(1));
            out.add("/" + first + "%2f" + rest.substring(1));
            out.add("/" + first + "%252F" + rest.substring(1));
        }
        return out;
    }

    @Test
    void noEncodingOfAnInternalPathOpensItWithoutTheCredential() throws Exception {
        int sent = 0;
        for (String base : List.of(cluster.url(), cluster.prefillUrl(0), cluster.decodeUrl(0))) {
            List<Route> routes = new ArrayList<>(routes(base));
            routes.add(new Route("GET", "/actuator/mappings"));
            for (Route r : routes) {
                if (!r.pattern().startsWith("/internal") && !r.pattern().startsWith("/actuator/mappings")) continue;
                String path = r.pattern().replaceAll("\\{[^}]+}", "1");
                boolean channel = path.equals("/internal/channel");
                List<String> forms = encodings(path);
                assertThat(forms).hasSizeGreaterThanOrEqualTo(12);
                for (String form : forms) {
                    int status = channel
                            ? RawHttp.status(
                                    base,
                                    "GET",
                                    form,
                                    null,
                                    "Upgrade: websocket",
                                    "Connection: Upgrade",
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                    "Sec-WebSocket-Version: 13")
                            : RawHttp.status(base, r.method(), form, "{}");
                    sent++;
                    assertThat(status)
                            .as("%s %s%s (route %s) without the credential", r.method(), base, form, r.pattern())
                            .isNotEqualTo(101)
                            .matches(st -> st < 200 || st > 299, "not a success");
                }
            }
        }
        assertThat(sent).as("requests sent").isGreaterThan(17 * 12);
    }

    @Test
    void noEncodingOfAnOpenAiPathSkipsTheBodyLimit() throws Exception {
        String big = "{\"model\":\"mooncakej-tiny\",\"prompt\":\"" + "x".repeat(100_000) + "\",\"max_tokens\":1}";
        for (String path : List.of("/v1/completions", "/v1/chat/completions", "/v1/models"))
            for (String form : encodings(path)) {
                int status = RawHttp.status(cluster.url(), "POST", form, big);
                assertThat(status)
                        .as("POST %s with a body over the limit", form)
                        .matches(st -> st < 200 || st > 299, "not a success")
                        .isNotEqualTo(500);
            }
        assertThat(RawHttp.status(cluster.url(), "POST", "/v1/completions", big))
                .as("the path as written: the body limit")
                .isEqualTo(413);
    }

    @Test
    void theSecretIsOnNoCommandLineAndInNoLog() throws Exception {
        String secret = LocalCluster.secret;
        assertThat(secret).isNotBlank();
        List<String> ours = new ArrayList<>();
        for (int offset : new int[] {0, 10, 20}) {
            String port = "--server.port=" + (cluster.port + offset);
            ProcessHandle.allProcesses()
                    .map(h -> h.info().commandLine().orElse(""))
                    .filter(c -> c.contains(port))
                    .forEach(ours::add);
        }
        assertThat(ours).as("the conductor, the prefill and the decode worker").hasSizeGreaterThanOrEqualTo(3);
        assertThat(ours).allSatisfy(c -> assertThat(c).doesNotContain(secret));
        for (String log : List.of("conductor", "prefill-0", "decode-0"))
            assertThat(cluster.log(log)).as("%s's log", log).doesNotContain(secret);
    }

    /** One counter or gauge summed over its series in a service's Prometheus page (0 when absent). */
    private static double metric(String base, String name, String filter) throws Exception {
        double sum = 0;
        for (String line : LocalCluster.get(base + "/actuator/prometheus").split("\n"))
            if ((line.startsWith(name + "{") || line.startsWith(name + " ")) && line.contains(filter))
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        return sum;
    }

    @Test
    void theConductorCallsItsWorkersOverTheirControlChannels() throws Exception {
        String prefill = cluster.prefillUrl(0), decode = cluster.decodeUrl(0);
        double prefillCalls = metric(prefill, "mooncakej_channel_calls_total", "");
        double decodeCalls = metric(decode, "mooncakej_channel_calls_total", "");
        double prefillRoute = metric(prefill, "http_server_requests_seconds_count", "uri=\"/internal/prefill\"");
        double reserveRoute = metric(decode, "http_server_requests_seconds_count", "uri=\"/internal/reserve\"");
        HttpResponse<String> r =
                post("/v1/completions", "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hello there\",\"max_tokens\":4}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(metric(prefill, "mooncakej_channel_calls_total", ""))
                .as("prefill calls on the prefill worker's channel")
                .isGreaterThanOrEqualTo(prefillCalls + 1);
        assertThat(metric(decode, "mooncakej_channel_calls_total", ""))
                .as("reserve and decode (or release) calls on the decode worker's channel")
                .isGreaterThanOrEqualTo(decodeCalls + 2);
        assertThat(metric(prefill, "http_server_requests_seconds_count", "uri=\"/internal/prefill\""))
                .as("POST /internal/prefill requests")
                .isEqualTo(prefillRoute);
        assertThat(metric(decode, "http_server_requests_seconds_count", "uri=\"/internal/reserve\""))
                .as("POST /internal/reserve requests")
                .isEqualTo(reserveRoute);
        assertThat(metric(decode, "mooncakej_channel_open", ""))
                .as("open channels")
                .isGreaterThanOrEqualTo(1);
    }

    /** What a raw WebSocket client receives: whole binary frames, and how the channel closed. */
    private static final class Frames implements WebSocket.Listener {
        final BlockingQueue<ControlFrame> frames = new LinkedBlockingQueue<>();
        final CompletableFuture<String> closed = new CompletableFuture<>();
        private final ByteArrayOutputStream part = new ByteArrayOutputStream();

        @Override
        public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
            byte[] b = new byte[data.remaining()];
            data.get(b);
            part.writeBytes(b);
            if (last) {
                frames.add(ControlFrame.decode(ByteBuffer.wrap(part.toByteArray())));
                part.reset();
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int status, String reason) {
            closed.complete(status + " " + reason);
            return null;
        }

        ControlFrame next() throws InterruptedException {
            ControlFrame f = frames.poll(10, TimeUnit.SECONDS);
            assertThat(f).as("a frame within 10 s").isNotNull();
            return f;
        }
    }

    private static void send(WebSocket ws, byte[] frame) throws Exception {
        ws.sendBinary(ByteBuffer.wrap(frame), true).get(10, TimeUnit.SECONDS);
    }

    @Test
    void aControlChannelNeedsTheCredentialAnswersLikeItsRoutesAndClosesOnAFrameThatDoesNotParse() throws Exception {
        URI ws = URI.create(cluster.decodeUrl(0).replace("http:", "ws:") + "/internal/channel");
        for (String credential : new String[] {
            null, ClusterCredential.of("some-other-cluster-secret").value()
        }) {
            var b = HTTP.newWebSocketBuilder();
            if (credential != null) b.header(ClusterCredential.HEADER, credential);
            try {
                b.buildAsync(ws, new Frames()).get(10, TimeUnit.SECONDS);
                throw new AssertionError(
                        "the channel opened " + (credential == null ? "without" : "with a wrong") + " credential");
            } catch (ExecutionException e) {
                assertThat(e.getCause()).isInstanceOf(WebSocketHandshakeException.class);
                assertThat(((WebSocketHandshakeException) e.getCause())
                                .getResponse()
                                .statusCode())
                        .isEqualTo(401);
            }
        }
        Frames in = new Frames();
        WebSocket s = HTTP.newWebSocketBuilder()
                .header(ClusterCredential.HEADER, LocalCluster.credential.value())
                .buildAsync(ws, in)
                .get(10, TimeUnit.SECONDS);
        send(
                s,
                ControlFrame.call(
                                1,
                                ControlFrame.RESERVE,
                                "edge-1",
                                "{\"reservationId\":777,\"promptTokens\":10," + "\"maxTokens\":4}")
                        .encode());
        ControlFrame reserved = in.next();
        assertThat(reserved.kind()).as(reserved.text()).isEqualTo(ControlFrame.REPLY);
        assertThat(reserved.call()).isEqualTo(1);
        assertThat(reserved.text()).contains("\"reservationId\":777");
        send(
                s,
                ControlFrame.call(2, ControlFrame.RELEASE, "edge-1", "{\"reservationId\":777}")
                        .encode());
        assertThat(in.next().kind()).isEqualTo(ControlFrame.REPLY);
        send(
                s,
                ControlFrame.call(3, ControlFrame.RELEASE, "edge-1", "{\"reservationId\":777}")
                        .encode());
        ControlFrame again = in.next();
        assertThat(again.kind()).isEqualTo(ControlFrame.ERROR);
        assertThat(again.status()).as(again.text()).isEqualTo(404);
        send(s, ControlFrame.call(4, ControlFrame.PREFILL, "edge-1", "{}").encode()); // a prefill worker's operation
        ControlFrame unknown = in.next();
        assertThat(unknown.status()).isEqualTo(404);
        assertThat(unknown.text()).contains("operation 2 is not served");
        send(
                s,
                ControlFrame.call(
                                5,
                                ControlFrame.RESERVE,
                                "edge-1",
                                "{\"reservationId\":1,\"promptTokens\":10,\"maxTokens\":4," + "\"nope\":2}")
                        .encode());
        ControlFrame bad = in.next();
        assertThat(bad.status()).isEqualTo(400);
        assertThat(bad.text()).contains("unknown field 'nope'");
        send(s, new byte[] {1, 2, 3});
        assertThat(in.closed.get(10, TimeUnit.SECONDS)).startsWith("1002").contains("expected at least 9");
        assertThat(LocalCluster.get(cluster.decodeUrl(0) + "/internal/status"))
                .as("still serving")
                .contains("{");
    }

    private static HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + path))
                        .timeout(Duration.ofSeconds(60))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static JsonNode error(HttpResponse<String> r) {
        return JSON.readTree(r.body()).path("error");
    }

    @Test
    void aBodyOverTheLimitGets413DeclaredOrNot() throws Exception {
        String big = "{\"model\":\"mooncakej-tiny\",\"prompt\":\"" + "x".repeat(100_000) + "\",\"max_tokens\":1}";
        HttpResponse<String> declared = post("/v1/completions", big);
        assertThat(declared.statusCode()).isEqualTo(413);
        assertThat(error(declared).path("code").asString()).isEqualTo("request_too_large");
        assertThat(error(declared).path("message").asString()).contains("65536");
        HttpResponse<String> chunked = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofInputStream(
                                () -> new ByteArrayInputStream(big.getBytes(StandardCharsets.UTF_8))))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(chunked.statusCode()).as(chunked.body()).isEqualTo(413);
        assertThat(error(chunked).path("code").asString()).isEqualTo("request_too_large");
        // and the service keeps serving
        assertThat(post("/v1/completions", "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hi\",\"max_tokens\":1}")
                        .statusCode())
                .isEqualTo(200);
    }

    @Test
    void eachUnsupportedParameterGets400NamingIt() throws Exception {
        String base = "\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
        for (String[] p : new String[][] {
            { // a call forced under a schema keyword the decoder cannot enforce
                "tools",
                "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                        + "\"properties\":{\"x\":{\"type\":\"string\",\"pattern\":\"^a\"}}}}}],"
                        + "\"tool_choice\":\"required\""
            },
            {"tool_choice", "\"sometimes\""},
            {"functions", "[]"},
            {"function_call", "\"auto\""},
            {
                "response_format",
                "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":"
                        + "{\"type\":\"string\",\"pattern\":\"^a\"}}}"
            },
            {"logit_bias", "{\"not-a-token\":10}"},
            {"n", "17"},
            {"audio", "{}"},
            {"modalities", "[\"text\",\"audio\"]"},
        }) {
            HttpResponse<String> r = post("/v1/chat/completions", "{" + base + ",\"" + p[0] + "\":" + p[1] + "}");
            assertThat(r.statusCode()).as("%s: %s", p[0], r.body()).isEqualTo(400);
            assertThat(error(r).path("param").asString()).as(p[0]).isEqualTo(p[0]);
        }
        HttpResponse<String> text =
                post("/v1/chat/completions", "{" + base + ",\"max_tokens\":1,\"response_format\":{\"type\":\"text\"}}");
        assertThat(text.statusCode())
                .as("response_format text is what it does anyway")
                .isEqualTo(200);
    }

    /** The text of a greedy completion of "Once" with extra body fields, and its usage and finish reason. */
    private static JsonNode complete(String extra) throws Exception {
        HttpResponse<String> r = post(
                "/v1/completions",
                "{\"model\":\"mooncakej-tiny\",\"prompt\":\"Once\",\"max_tokens\":6,\"temperature\":0" + extra + "}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    @Test
    void logitBiasMinTokensIgnoreEosTokenizeAndDetokenize() throws Exception {
        int a = tokenizer.encode("a")[0];
        JsonNode forced = complete(",\"logit_bias\":{\"" + a + "\":100}");
        assertThat(forced.get("choices").get(0).get("text").asString())
                .as("a bias of 100 all but forces the token")
                .isEqualTo("aaaaaa");
        String greedy = complete("").get("choices").get(0).get("text").asString();
        int firstGreedy = tokenizer.encode(greedy)[0];
        String banned = complete(",\"logit_bias\":{\"" + firstGreedy + "\":-100}")
                .get("choices")
                .get(0)
                .get("text")
                .asString();
        assertThat(banned).as("the greedy first token banned").doesNotStartWith(tokenizer.decode(new int[] {firstGreedy
        }));
        // the end of sequence forced by a bias: it ends the answer at once, unless ignore_eos or min_tokens say no
        int eos = tokenizer.eos();
        String toEos = ",\"logit_bias\":{\"" + eos + "\":100}";
        assertThat(complete(toEos).get("usage").get("completion_tokens").asInt())
                .isZero();
        JsonNode ignored = complete(toEos + ",\"ignore_eos\":true");
        assertThat(ignored.get("usage").get("completion_tokens").asInt()).isEqualTo(6);
        assertThat(ignored.get("choices").get(0).get("finish_reason").asString())
                .isEqualTo("length");
        JsonNode atLeast = complete(toEos + ",\"min_tokens\":3");
        assertThat(atLeast.get("usage").get("completion_tokens").asInt()).isEqualTo(3);
        assertThat(atLeast.get("choices").get(0).get("finish_reason").asString())
                .isEqualTo("stop");
        for (String bad : List.of(
                ",\"logit_bias\":{\"99999999\":1}",
                ",\"logit_bias\":{\"1\":101}",
                ",\"min_tokens\":7",
                ",\"ignore_eos\":\"yes\"")) {
            HttpResponse<String> r = post(
                    "/v1/completions",
                    "{\"model\":\"mooncakej-tiny\",\"prompt\":\"Once\",\"max_tokens\":6" + bad + "}");
            assertThat(r.statusCode()).as(bad).isEqualTo(400);
            assertThat(error(r).path("param").asString()).as(bad).isIn("logit_bias", "min_tokens", "ignore_eos");
        }

        // vLLM's /tokenize and /detokenize
        HttpResponse<String> t = post("/tokenize", "{\"model\":\"mooncakej-tiny\",\"prompt\":\"Hello world\"}");
        assertThat(t.statusCode()).as(t.body()).isEqualTo(200);
        JsonNode tok = JSON.readTree(t.body());
        int[] ids = new int[tok.get("tokens").size()];
        for (int i = 0; i < ids.length; i++) ids[i] = tok.get("tokens").get(i).asInt();
        assertThat(tok.get("count").asInt()).isEqualTo(ids.length);
        assertThat(tok.get("max_model_len").asInt()).isPositive();
        int[] expected = tokenizer.encode("Hello world");
        assertThat(ids).endsWith(expected);
        HttpResponse<String> d = post(
                "/detokenize", "{\"model\":\"mooncakej-tiny\",\"tokens\":" + JSON.writeValueAsString(expected) + "}");
        assertThat(JSON.readTree(d.body()).get("prompt").asString()).isEqualTo("Hello world");
        String chat = "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi there\"}]";
        int counted =
                JSON.readTree(post("/tokenize", chat + "}").body()).get("count").asInt();
        int used = JSON.readTree(post("/v1/chat/completions", chat + ",\"max_tokens\":1}")
                        .body())
                .get("usage")
                .get("prompt_tokens")
                .asInt();
        assertThat(counted)
                .as("messages are counted as a chat request renders them")
                .isEqualTo(used);
        HttpResponse<String> badIds = post("/detokenize", "{\"model\":\"mooncakej-tiny\",\"tokens\":[1,-5]}");
        assertThat(badIds.statusCode()).isEqualTo(400);
        assertThat(error(badIds).path("message").asString()).contains("tokens[1]=-5");
    }

    @Test
    void batchedPromptsAndEchoOnCompletions() throws Exception {
        List<String> prompts = List.of("Once", "Hello there", "The quick brown fox");
        List<String> alone = new ArrayList<>();
        for (String p : prompts)
            alone.add(JSON.readTree(post(
                                    "/v1/completions",
                                    "{\"model\":\"mooncakej-tiny\",\"prompt\":" + JSON.writeValueAsString(p)
                                            + ",\"max_tokens\":5,\"temperature\":0}")
                            .body())
                    .get("choices")
                    .get(0)
                    .get("text")
                    .asString());
        String batch = "{\"model\":\"mooncakej-tiny\",\"prompt\":" + JSON.writeValueAsString(prompts)
                + ",\"max_tokens\":5,\"temperature\":0";
        HttpResponse<String> r = post("/v1/completions", batch + "}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode out = JSON.readTree(r.body());
        assertThat(out.get("choices").size()).isEqualTo(3);
        for (int i = 0; i < 3; i++) {
            assertThat(out.get("choices").get(i).get("index").asInt()).isEqualTo(i);
            assertThat(out.get("choices").get(i).get("text").asString())
                    .as("prompt %d", i)
                    .isEqualTo(alone.get(i));
        }
        assertThat(out.get("usage").get("completion_tokens").asInt()).isBetween(3, 15);
        // streamed: each choice's chunks, by index, join into the same texts
        assertThat(streamedTexts(batch + ",\"stream\":true}", 3)).containsExactly(alone.toArray(String[]::new));
        // echo: the prompt, then the answer
        JsonNode echoed = JSON.readTree(post(
                        "/v1/completions",
                        "{\"model\":\"mooncakej-tiny\",\"prompt\":\"Once\",\"max_tokens\":5,\"temperature\":0,"
                                + "\"echo\":true}")
                .body());
        assertThat(echoed.get("choices").get(0).get("text").asString()).isEqualTo("Once" + alone.get(0));
        HttpResponse<String> tooMany = post(
                "/v1/completions",
                "{\"model\":\"mooncakej-tiny\",\"prompt\":" + JSON.writeValueAsString(Collections.nCopies(65, "a"))
                        + "}");
        assertThat(tooMany.statusCode()).isEqualTo(400);
        assertThat(error(tooMany).path("message").asString()).contains("at most 64");
    }

    /** A streamed completion's text per choice: its chunks joined by their index. */
    private static String[] streamedTexts(String body, int choices) throws Exception {
        String[] streamed = new String[choices];
        Arrays.fill(streamed, "");
        for (String line : post("/v1/completions", body).body().split("\n")) {
            if (!line.startsWith("data:") || line.contains("[DONE]")) continue;
            JsonNode c = JSON.readTree(line.substring(5).trim()).get("choices").get(0);
            streamed[c.get("index").asInt()] += c.get("text").asString();
        }
        return streamed;
    }

    /** The decode worker's KV blocks in use. */
    private static double decodeBlocksUsed() throws Exception {
        return LocalCluster.metric(cluster.decodeUrl(0), "mooncakej_kv_blocks_used");
    }

    @Test
    void nChoicesComeFromOnePrefillAndShareThePromptsBlocks() throws Exception {
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < 100; i++) ids.add(3 + (i * 13) % 200); // 3 full blocks of 32 and a partial one
        String base = "{\"model\":\"mooncakej-tiny\",\"prompt\":" + ids + ",\"max_tokens\":8,"
                + "\"temperature\":1,\"seed\":11";
        double before = decodeBlocksUsed();
        assertThat(before).as("the decode worker's block gauge").isNotNaN();
        JsonNode three =
                JSON.readTree(post("/v1/completions", base + ",\"n\":3}").body());
        assertThat(three.get("choices").size()).as(three.toString()).isEqualTo(3);
        List<String> texts = new ArrayList<>();
        for (int c = 0; c < 3; c++) {
            assertThat(three.get("choices").get(c).get("index").asInt()).isEqualTo(c);
            texts.add(three.get("choices").get(c).get("text").asString());
        }
        assertThat(texts.stream().distinct().count())
                .as("three draws at temperature 1, each under its own seed: %s", texts)
                .isGreaterThan(1);
        JsonNode one = JSON.readTree(post("/v1/completions", base + "}").body());
        assertThat(one.get("choices").get(0).get("text").asString())
                .as("the first choice samples under the request's seed, as n=1 does")
                .isEqualTo(texts.get(0));
        assertThat(three.get("usage").get("prompt_tokens").asInt()).isEqualTo(100);
        assertThat(three.get("usage").get("completion_tokens").asInt()).isBetween(3, 24);
        // one reservation on the decode worker: 108 tokens are 4 blocks, the 3 full prompt blocks shared,
        // each further choice a copy of the partial one and nothing more to generate into: 4 + 2 = 6 (12
        // if each choice had its own prompt)
        assertThat(cluster.log("decode-0")).contains(": 6 blocks for 100 prompt + 8 generated tokens x 3 choices: ok");
        // streamed: each choice's chunks, by index, join into the same texts (the same seeds)
        assertThat(streamedTexts(base + ",\"n\":3,\"stream\":true}", 3)).containsExactly(texts.toArray(String[]::new));
        // chat: n messages
        JsonNode chat = JSON.readTree(post(
                        "/v1/chat/completions",
                        "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                                + "\"max_tokens\":4,\"n\":2,\"seed\":3,\"temperature\":1}")
                .body());
        assertThat(chat.get("choices").size()).as(chat.toString()).isEqualTo(2);
        assertThat(chat.get("choices").get(1).get("message").get("role").asString())
                .isEqualTo("assistant");
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (decodeBlocksUsed() > before && System.nanoTime() < until) Thread.sleep(50);
        assertThat(decodeBlocksUsed()).as("every choice's blocks back").isEqualTo(before);
    }

    @Test
    void echoWithLogprobsGivesThePromptsLogprobsAsTheDecodeDrewThem() throws Exception {
        Map<String, Integer> byText = new HashMap<>(), same = new HashMap<>();
        for (int id = 0; id < tokenizer.vocabSize(); id++) {
            String t = new String(tokenizer.tokenBytes(id), StandardCharsets.UTF_8);
            byText.putIfAbsent(t, id);
            same.merge(t, 1, Integer::sum);
        }
        // a prompt whose first three drawn tokens are known by their text alone (no other id spells them)
        List<Integer> prompt = null;
        JsonNode drawn = null;
        for (int attempt = 0; attempt < 20 && prompt == null; attempt++) {
            List<Integer> p = new ArrayList<>();
            for (int i = 0; i < 40; i++) p.add(3 + (i * 11 + attempt * 7) % 200);
            JsonNode d = JSON.readTree(post(
                                    "/v1/completions",
                                    "{\"model\":\"mooncakej-tiny\",\"prompt\":" + p
                                            + ",\"max_tokens\":4,\"temperature\":0,\"logprobs\":1}")
                            .body())
                    .get("choices")
                    .get(0)
                    .get("logprobs");
            boolean known = d.get("tokens").size() >= 3;
            for (int k = 0; known && k < 3; k++)
                known = same.getOrDefault(d.get("tokens").get(k).asString(), 0) == 1;
            if (known) {
                prompt = p;
                drawn = d;
            }
        }
        assertThat(prompt)
                .as("a prompt whose answer's tokens are known by their text")
                .isNotNull();
        List<Integer> more = new ArrayList<>(prompt);
        for (int k = 0; k < 3; k++)
            more.add(byText.get(drawn.get("tokens").get(k).asString()));
        JsonNode echoed = JSON.readTree(post(
                                "/v1/completions",
                                "{\"model\":\"mooncakej-tiny\",\"prompt\":" + more
                                        + ",\"max_tokens\":1,\"temperature\":0,\"logprobs\":1,\"echo\":true}")
                        .body())
                .get("choices")
                .get(0);
        JsonNode lp = echoed.get("logprobs");
        assertThat(lp.get("tokens").size()).as(echoed.toString()).isEqualTo(more.size() + 1);
        assertThat(lp.get("token_logprobs").get(0).isNull())
                .as("nothing came before the first token")
                .isTrue();
        for (int k = 0; k < 3; k++) // the prefill's log-probability of each token the decode drew after the prompt
        assertThat(lp.get("token_logprobs").get(prompt.size() + k).asDouble())
                    .as("token %d after the prompt", k)
                    .isCloseTo(drawn.get("token_logprobs").get(k).asDouble(), within(0.02));
        for (int i = 1; i < more.size(); i++)
            assertThat(lp.get("token_logprobs").get(i).asDouble()).isLessThanOrEqualTo(0);
    }

    @Test
    void specialTokenTextInAMessageIsText() throws Exception {
        String special = "<|im_end|>";
        int empty = promptTokens("");
        int withSpecial = promptTokens(special);
        assertThat(withSpecial - empty)
                .as("tokens of the message '%s'", special)
                .isEqualTo(tokenizer.encode(special).length)
                .isGreaterThan(1);
    }

    private static int promptTokens(String content) throws Exception {
        HttpResponse<String> r = post(
                "/v1/chat/completions",
                JSON.writeValueAsString(Map.of(
                        "model",
                        "mooncakej-tiny",
                        "max_tokens",
                        1,
                        "messages",
                        List.of(Map.of("role", "user", "content", content)))));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body()).path("usage").path("prompt_tokens").asInt();
    }

    @Test
    void aRouteOrMethodNotServedGetsAnOpenAiErrorBody() throws Exception {
        HttpResponse<String> embeddings = post("/v1/embeddings", "{\"model\":\"mooncakej-tiny\",\"input\":\"hi\"}");
        assertThat(embeddings.statusCode()).isEqualTo(404);
        assertThat(error(embeddings).path("code").asString()).isEqualTo("not_found");
        HttpResponse<String> get = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(get.statusCode()).isEqualTo(405);
        assertThat(error(get).path("code").asString()).isEqualTo("method_not_allowed");
        assertThat(get.body()).doesNotContain("Exception").doesNotContain("127.0.0.1:" + (cluster.port + 10));
        HttpResponse<String> form = HTTP.send(
                HttpRequest.newBuilder(URI.create(cluster.url() + "/v1/completions"))
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .POST(HttpRequest.BodyPublishers.ofString("prompt=hi"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(form.statusCode()).isEqualTo(415);
        assertThat(error(form).path("code").asString()).isEqualTo("unsupported_media_type");
    }
}
