package dev.mooncakej.cluster;

import dev.mooncakej.kvcache.Redacted;
import dev.mooncakej.kvtransfer.engine.EtcdAccess;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * {@code mooncakej.cluster.*}, the same on every service (bound by each Spring app from YAML or the
 * environment): no etcd endpoints means the single-host embedded mode (static worker lists, no
 * election); with endpoints, workers register and the conductor watches and campaigns.
 *
 * @param etcdEndpoints   etcd client URLs; empty: embedded single-host mode
 * @param prefix          key prefix in etcd (default {@code mooncakej/})
 * @param leaseTtlSeconds how long a dead process stays visible (default 5)
 * @param advertiseHost   the host other services use to reach this one (default: this host's name)
 * @param etcdUser        etcd user when etcd has authentication on
 * @param etcdPassword    its password (from the environment, MOONCAKEJ_ETCD_PASSWORD in the profiles)
 * @param etcdPasswordFile a file holding that password instead (a mounted secret)
 * @param etcdCaFile      PEM CA of etcd's server certificate (https endpoints)
 * @param etcdCertFile    PEM client certificate for etcd
 * @param etcdKeyFile     its PKCS#8 PEM key
 * @param tlsBundle       the Spring SSL bundle of the internal HTTP plane (empty: plain http): each
 *                        service serves with it and calls the others over https trusting it
 */
public record ClusterSettings(
        List<String> etcdEndpoints,
        String prefix,
        Long leaseTtlSeconds,
        String advertiseHost,
        String etcdUser,
        String etcdPassword,
        String etcdPasswordFile,
        String etcdCaFile,
        String etcdCertFile,
        String etcdKeyFile,
        String tlsBundle) {
    public ClusterSettings {
        etcdEndpoints = etcdEndpoints == null
                ? List.of()
                : etcdEndpoints.stream()
                        .map(String::trim)
                        .filter(e -> !e.isEmpty())
                        .toList();
        prefix = prefix == null ? "mooncakej/" : prefix;
        leaseTtlSeconds = leaseTtlSeconds == null ? 5L : leaseTtlSeconds;
        if (!prefix.endsWith("/") || prefix.length() < 2)
            throw new IllegalArgumentException(
                    "mooncakej.cluster.prefix='" + prefix + "': expected a key prefix ending in /, such as mooncakej/");
        if (leaseTtlSeconds < 1 || leaseTtlSeconds > 3600)
            throw new IllegalArgumentException(
                    "mooncakej.cluster.lease-ttl-seconds=" + leaseTtlSeconds + ": expected 1..3600");
        if (advertiseHost != null && !advertiseHost.matches("[A-Za-z0-9.:_-]+"))
            throw new IllegalArgumentException(
                    "mooncakej.cluster.advertise-host='" + advertiseHost + "': expected a host name or address");
    }

    public static ClusterSettings embedded() {
        return of(List.of(), null, null, null);
    }

    /** Plain etcd (no TLS, no etcd authentication) and plain internal http. */
    public static ClusterSettings of(List<String> etcdEndpoints, String prefix, Long leaseTtlSeconds, String host) {
        return new ClusterSettings(
                etcdEndpoints, prefix, leaseTtlSeconds, host, null, null, null, null, null, null, null);
    }

    /** Whether the internal HTTP plane runs over TLS ({@code mooncakej.cluster.tls-bundle} is set). */
    public boolean tls() {
        return tlsBundle != null && !tlsBundle.isBlank();
    }

    /** How to reach etcd (null in the single-host mode); the password read from its file when one is named. */
    public EtcdAccess etcd() {
        if (!enabled()) return null;
        String password = etcdPassword;
        if (etcdPasswordFile != null && !etcdPasswordFile.isBlank()) {
            try {
                password = Files.readString(Path.of(etcdPasswordFile)).strip();
            } catch (IOException | RuntimeException e) {
                throw new IllegalArgumentException("mooncakej.cluster.etcd-password-file=" + etcdPasswordFile
                        + ": cannot be read (" + e.getClass().getSimpleName() + "); expected a file holding the"
                        + " etcd password");
            }
        }
        return new EtcdAccess(
                etcdEndpoints, etcdUser, password, path(etcdCaFile), path(etcdCertFile), path(etcdKeyFile));
    }

    private static Path path(String f) {
        return f == null || f.isBlank() ? null : Path.of(f);
    }

    @Override
    public String toString() {
        return Redacted.toString(this, "etcdPassword");
    }

    public boolean enabled() {
        return !etcdEndpoints.isEmpty();
    }

    /** The URL other services use for this one on {@code port}. */
    public String advertiseUrl(int port) {
        String host = advertiseHost;
        if (host == null) {
            try {
                host = InetAddress.getLocalHost().getHostName();
            } catch (IOException e) {
                host = "127.0.0.1";
            }
        }
        return (tls() ? "https://" : "http://") + host + ":" + port;
    }

    /** Connects (validating the endpoints, naming the key on a bad one). */
    public EtcdCluster connect() {
        if (!enabled())
            throw new IllegalArgumentException(
                    "mooncakej.cluster.etcd-endpoints: expected at least one URL like http://127.0.0.1:2379");
        return new EtcdCluster(etcd(), prefix, leaseTtlSeconds, Duration.ofSeconds(5));
    }
}
