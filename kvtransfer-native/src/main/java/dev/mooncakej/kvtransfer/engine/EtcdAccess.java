package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvcache.Redacted;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.ClientBuilder;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.net.ssl.SSLException;

/**
 * How a service reaches etcd: the endpoints, and in a cluster TLS (the CA that signed etcd's
 * certificate, and this service's client certificate and key when etcd asks for one) and etcd's own
 * authentication (a user and its password). One place builds the jetcd client, for the membership
 * (conductor and workers) and the transfer metadata (workers) alike.
 *
 * @param endpoints etcd client URLs, {@code http://host:port} or {@code https://host:port}
 * @param user      etcd user (null: etcd without authentication)
 * @param password  that user's password (never in a log or {@link #toString})
 * @param caFile    PEM CA certificate that signed etcd's server certificate (needed for https)
 * @param certFile  PEM client certificate (null: no client certificate)
 * @param keyFile   PEM PKCS#8 private key of {@code certFile}
 */
public record EtcdAccess(
        List<String> endpoints, String user, String password, Path caFile, Path certFile, Path keyFile) {
    public EtcdAccess {
        endpoints = endpoints == null ? List.of() : List.copyOf(endpoints);
        if (endpoints.isEmpty())
            throw new IllegalArgumentException(
                    "mooncakej.cluster.etcd-endpoints: expected at least one URL like http://127.0.0.1:2379");
        boolean tls = false;
        for (String e : endpoints) {
            URI u;
            try {
                u = URI.create(e);
            } catch (IllegalArgumentException bad) {
                throw new IllegalArgumentException(
                        "mooncakej.cluster.etcd-endpoints: '" + e + "' is not a URL; expected http://host:port", bad);
            }
            if (!"http".equals(u.getScheme()) && !"https".equals(u.getScheme())
                    || u.getHost() == null
                    || u.getPort() < 1)
                throw new IllegalArgumentException("mooncakej.cluster.etcd-endpoints: '" + e
                        + "': expected http://host:port or https://host:port");
            tls |= "https".equals(u.getScheme());
        }
        for (String e : endpoints)
            if (tls != e.startsWith("https:"))
                throw new IllegalArgumentException("mooncakej.cluster.etcd-endpoints: " + endpoints
                        + ": expected all http:// or all https:// (one etcd cluster, one scheme)");
        if (tls && caFile == null)
            throw new IllegalArgumentException("mooncakej.cluster.etcd-endpoints are https but"
                    + " mooncakej.cluster.etcd-ca-file is not set: expected the PEM CA certificate that signed etcd's");
        if (!tls && (caFile != null || certFile != null))
            throw new IllegalArgumentException("mooncakej.cluster.etcd-ca-file/etcd-cert-file are set but the"
                    + " etcd endpoints " + endpoints + " are http://: expected https:// endpoints with TLS files");
        if ((certFile == null) != (keyFile == null))
            throw new IllegalArgumentException("mooncakej.cluster.etcd-cert-file and etcd-key-file: expected both"
                    + " (a client certificate and its key) or neither");
        for (Path f : new Path[] {caFile, certFile, keyFile})
            if (f != null && !Files.isReadable(f))
                throw new IllegalArgumentException(
                        "etcd TLS file " + f + ": cannot be read; expected a PEM file (see docs/SECURITY.md)");
        if (user != null && user.isBlank()) user = null;
        if (password != null && password.isEmpty()) password = null;
        if ((user == null) != (password == null))
            throw new IllegalArgumentException("mooncakej.cluster.etcd-user and its password: expected both or"
                    + " neither (the password from MOONCAKEJ_ETCD_PASSWORD or mooncakej.cluster.etcd-password-file)");
    }

    /** Plain etcd, no TLS, no authentication (one host, tests). */
    public static EtcdAccess plain(List<String> endpoints) {
        return new EtcdAccess(endpoints, null, null, null, null, null);
    }

    public boolean tls() {
        return caFile != null;
    }

    /** A new jetcd client (the caller closes it). */
    public Client client() {
        ClientBuilder b = Client.builder().endpoints(endpoints.toArray(String[]::new));
        if (user != null)
            b.user(ByteSequence.from(user, StandardCharsets.UTF_8))
                    .password(ByteSequence.from(password, StandardCharsets.UTF_8));
        if (tls()) {
            try {
                b.sslContext(ssl -> {
                    ssl.trustManager(caFile.toFile());
                    if (certFile != null) ssl.keyManager(certFile.toFile(), keyFile.toFile());
                });
            } catch (SSLException | IllegalArgumentException e) {
                throw new IllegalArgumentException(
                        "etcd TLS files " + caFile + ", " + certFile + ", " + keyFile + ": not usable ("
                                + e.getMessage() + "); expected PEM certificates and a PKCS#8 key",
                        e);
            }
        }
        return b.build();
    }

    @Override
    public String toString() {
        return Redacted.toString(this, "password");
    }
}
