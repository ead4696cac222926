package dev.mooncakej.cluster;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.function.Supplier;

/**
 * POSTs internal JSON to the leader conductor (the store master's host): its URL from etcd in a
 * cluster, or the worker's {@code conductor-url} on one host.
 */
public final class LeaderLink {
    private final Supplier<String> leaderUrl;
    private final dev.mooncakej.kvcache.wire.ClusterCredential credential;
    private final HttpClient http;

    public LeaderLink(Supplier<String> leaderUrl, InternalHttp internal) {
        this.leaderUrl = leaderUrl;
        this.credential = internal.credential();
        this.http = internal.newClient(Duration.ofSeconds(2));
    }

    /** The answer's body on a 2xx, else null (no leader, a standby's 409, a refused message, unreachable). */
    public String post(String path, String json) {
        String base = leaderUrl.get();
        if (base == null) return null;
        try {
            HttpResponse<String> r = http.send(
                    HttpRequest.newBuilder(URI.create(base + path))
                            .timeout(Duration.ofSeconds(2))
                            .header("Content-Type", "application/json")
                            .header(dev.mooncakej.kvcache.wire.ClusterCredential.HEADER, credential.value())
                            .POST(HttpRequest.BodyPublishers.ofString(json))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            return r.statusCode() / 100 == 2 ? r.body() : null;
        } catch (java.io.IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }
}
