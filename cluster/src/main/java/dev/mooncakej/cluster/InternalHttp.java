package dev.mooncakej.cluster;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.net.http.HttpClient;
import java.time.Duration;
import javax.net.ssl.SSLContext;

/**
 * What a call on the internal plane carries: the cluster credential (every internal route checks it)
 * and, when {@code mooncakej.cluster.tls-bundle} is set, the TLS context that trusts the cluster's CA
 * (the peer's certificate and host name are verified; the credential then never crosses the network
 * in clear). Built once per service by its web edge.
 *
 * @param credential the cluster credential
 * @param tls        TLS context for https peers; null: plain http
 */
public record InternalHttp(ClusterCredential credential, SSLContext tls) {
    public InternalHttp {
        if (credential == null) throw new IllegalArgumentException("the internal plane needs the cluster credential");
    }

    public static InternalHttp plain(ClusterCredential credential) {
        return new InternalHttp(credential, null);
    }

    /** A JDK HTTP client for internal calls (https verified against the cluster CA when TLS is on). */
    public HttpClient newClient(Duration connectTimeout) {
        HttpClient.Builder b = HttpClient.newBuilder().connectTimeout(connectTimeout);
        if (tls != null) b.sslContext(tls);
        return b.build();
    }

    @Override
    public String toString() {
        return "InternalHttp[tls=" + (tls != null) + "]";
    }
}
