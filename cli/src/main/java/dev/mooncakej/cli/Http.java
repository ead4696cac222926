package dev.mooncakej.cli;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** The commands' GETs of a running cluster (a 10 s timeout; the internal plane's credential when given). */
final class Http {
    private Http() {}

    static String get(HttpClient http, String url) throws IOException, InterruptedException {
        return get(http, url, null);
    }

    static String get(HttpClient http, String url, ClusterCredential credential)
            throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10));
        if (credential != null) b.header(ClusterCredential.HEADER, credential.value());
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString()).body();
    }
}
