package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The internal plane as an attacker on the network meets it ({@code ./mooncakej up}): every route
 * each running app has registered (read from its own route listing, so a route added later cannot
 * be missed) that belongs to the internal plane refuses a caller without the cluster credential, and
 * one with a wrong one; the listing itself is internal; the secret is on no process's command line
 * and in no log of any process {@code up} starts.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class InternalPlaneSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
    private static LocalCluster cluster;

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-plane");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(model, 1, 1);
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    private record Route(String method, String pattern) {}

    /** Every route an app registered, from its own listing (Actuator's mappings, read with the credential). */
    private static List<Route> routes(String base) throws Exception {
        HttpResponse<String> r = HTTP.send(
                HttpRequest.newBuilder(java.net.URI.create(base + "/actuator/mappings"))
                        .header(ClusterCredential.HEADER, LocalCluster.credential.value())
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("the route listing with the credential").isEqualTo(200);
        List<Route> out = new ArrayList<>();
        collect(JSON.readTree(r.body()), out);
        return out;
    }

    private static void collect(JsonNode n, List<Route> out) {
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
        HttpRequest.Builder b = HttpRequest.newBuilder(java.net.URI.create(base + path))
                .timeout(Duration.ofSeconds(10))
                .header("Content-Type", "application/json")
                .method(route.method(), HttpRequest.BodyPublishers.ofString("{}"));
        if (credential != null) b.header(ClusterCredential.HEADER, credential);
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString()).statusCode();
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
                    HttpRequest.newBuilder(java.net.URI.create(base + "/actuator/mappings"))
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
        assertThat(internal).as("internal routes found across the three apps").isGreaterThanOrEqualTo(15);
        // the public API still answers without it
        HttpResponse<String> models = HTTP.send(
                HttpRequest.newBuilder(java.net.URI.create(cluster.url() + "/v1/models"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(models.statusCode()).isEqualTo(200);
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
}
