package dev.mooncakej.cluster;

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
 */
public record ClusterSettings(List<String> etcdEndpoints, String prefix, Long leaseTtlSeconds, String advertiseHost) {
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
        return new ClusterSettings(List.of(), null, null, null);
    }

    public boolean enabled() {
        return !etcdEndpoints.isEmpty();
    }

    /** The URL other services use for this one on {@code port}. */
    public String advertiseUrl(int port) {
        String host = advertiseHost;
        if (host == null) {
            try {
                host = java.net.InetAddress.getLocalHost().getHostName();
            } catch (java.io.IOException e) {
                host = "127.0.0.1";
            }
        }
        return "http://" + host + ":" + port;
    }

    /** Connects (validating the endpoints, naming the key on a bad one). */
    public EtcdCluster connect() {
        return new EtcdCluster(etcdEndpoints, prefix, leaseTtlSeconds, Duration.ofSeconds(5));
    }
}
