package dev.mooncakej.kvtransfer.verbs;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How the rdma transport addresses and drives its devices. Everything a real fabric needs to differ
 * on is a key: which devices and port, which GID (or the automatic RoCE v2 choice), the service level
 * and traffic class, the hop limit, and how much work one queue pair and one completion queue hold.
 *
 * @param devices        device names to use (empty: every device the library lists)
 * @param port           the HCA port (1 on single-port cards)
 * @param gidIndex       GID table index; -1 chooses it (InfiniBand: 0; RoCE: the RoCE v2 GID whose
 *                       address is the advertised address, else the first RoCE v2 IPv4 GID)
 * @param serviceLevel   InfiniBand service level / RoCE priority (0..15), in the address vector
 * @param trafficClass   GRH traffic class (0..255; on RoCE the DSCP shifted left by two, e.g. 106 for DSCP 26)
 * @param hopLimit       GRH hop limit (1..255)
 * @param maxOutstanding signalled work requests one queue pair keeps in flight (capped by the device's max_qp_wr)
 * @param cqEntries      completion queue size per device (capped by max_cqe); work in flight on a device
 *                       never exceeds it, so the queue cannot overrun
 * @param ackTimeout     local ACK timeout exponent (4.096 us x 2^n; 14 is about 67 ms)
 * @param retryCount     transport retries before a work request fails (0..7)
 * @param rnrRetry       receiver-not-ready retries (0..7, 7 is infinite)
 * @param drainMillis    how long an endpoint that broke or was evicted waits for its work in flight
 *                       before failing it explicitly
 * @param sysfsRoot      where the kernel lists RDMA devices ({@code /sys/class/infiniband}); GID types come from here
 */
public record RdmaSettings(
        List<String> devices,
        int port,
        int gidIndex,
        int serviceLevel,
        int trafficClass,
        int hopLimit,
        int maxOutstanding,
        int cqEntries,
        int ackTimeout,
        int retryCount,
        int rnrRetry,
        long drainMillis,
        Path sysfsRoot) {
    public static final RdmaSettings DEFAULTS =
            new RdmaSettings(List.of(), 1, -1, 0, 0, 64, 256, 16384, 14, 7, 7, 5000, Path.of("/sys/class/infiniband"));

    /** The keys {@link #fromKeys} accepts, with their defaults, in the order the docs list them. */
    public static final Map<String, String> KEYS = keys();

    public RdmaSettings {
        devices = List.copyOf(devices);
        for (String d : devices)
            if (!d.matches("[A-Za-z0-9_.-]{1,64}"))
                throw new IllegalArgumentException(
                        "rdma devices entry '" + d + "': expected a device name such as mlx5_0");
        check(port >= 1 && port <= 255, "port", port, "1..255");
        check(gidIndex >= -1 && gidIndex <= 255, "gid-index", gidIndex, "-1 (automatic) or 0..255");
        check(serviceLevel >= 0 && serviceLevel <= 15, "service-level", serviceLevel, "0..15");
        check(trafficClass >= 0 && trafficClass <= 255, "traffic-class", trafficClass, "0..255");
        check(hopLimit >= 1 && hopLimit <= 255, "hop-limit", hopLimit, "1..255");
        check(maxOutstanding >= 1 && maxOutstanding <= 32768, "max-outstanding", maxOutstanding, "1..32768");
        check(cqEntries >= 16 && cqEntries <= (1 << 22), "cq-entries", cqEntries, "16..4194304");
        check(ackTimeout >= 0 && ackTimeout <= 31, "ack-timeout", ackTimeout, "0..31");
        check(retryCount >= 0 && retryCount <= 7, "retry-count", retryCount, "0..7");
        check(rnrRetry >= 0 && rnrRetry <= 7, "rnr-retry", rnrRetry, "0..7");
        check(drainMillis >= 1 && drainMillis <= 600_000, "drain-millis", drainMillis, "1..600000");
        if (sysfsRoot == null) throw new IllegalArgumentException("rdma sysfs-root: expected a directory");
    }

    private static void check(boolean ok, String key, long value, String expected) {
        if (!ok) throw new IllegalArgumentException("rdma " + key + "=" + value + ": expected " + expected);
    }

    /**
     * Settings from configuration keys (e.g. {@code mooncakej.prefill.kv-rdma.*}): an unknown key or a
     * bad value is refused naming {@code prefix + key} and what was expected.
     */
    public static RdmaSettings fromKeys(String prefix, Map<String, String> given) {
        Map<String, String> v = new LinkedHashMap<>(KEYS);
        if (given != null)
            for (var e : given.entrySet()) {
                if (!KEYS.containsKey(e.getKey()))
                    throw new IllegalArgumentException(
                            prefix + e.getKey() + ": unknown rdma key; expected one of " + KEYS.keySet());
                v.put(e.getKey(), e.getValue() == null ? "" : e.getValue().trim());
            }
        try {
            return new RdmaSettings(
                    Arrays.stream(v.get("devices").split(","))
                            .map(String::trim)
                            .filter(s -> !s.isEmpty())
                            .toList(),
                    integer(prefix, v, "port"),
                    integer(prefix, v, "gid-index"),
                    integer(prefix, v, "service-level"),
                    integer(prefix, v, "traffic-class"),
                    integer(prefix, v, "hop-limit"),
                    integer(prefix, v, "max-outstanding"),
                    integer(prefix, v, "cq-entries"),
                    integer(prefix, v, "ack-timeout"),
                    integer(prefix, v, "retry-count"),
                    integer(prefix, v, "rnr-retry"),
                    integer(prefix, v, "drain-millis"),
                    Path.of(v.get("sysfs-root")));
        } catch (IllegalArgumentException e) {
            if (e.getMessage() != null && e.getMessage().startsWith(prefix)) throw e;
            throw new IllegalArgumentException(prefix + e.getMessage().replaceFirst("^rdma ", ""), e);
        }
    }

    private static int integer(String prefix, Map<String, String> v, String key) {
        String s = v.get(key);
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(prefix + key + "=" + s + ": expected an integer");
        }
    }

    private static Map<String, String> keys() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("devices", "");
        m.put("port", "1");
        m.put("gid-index", "-1");
        m.put("service-level", "0");
        m.put("traffic-class", "0");
        m.put("hop-limit", "64");
        m.put("max-outstanding", "256");
        m.put("cq-entries", "16384");
        m.put("ack-timeout", "14");
        m.put("retry-count", "7");
        m.put("rnr-retry", "7");
        m.put("drain-millis", "5000");
        m.put("sysfs-root", "/sys/class/infiniband");
        return Collections.unmodifiableMap(m);
    }

    public RdmaSettings withDevices(List<String> d) {
        return new RdmaSettings(
                d,
                port,
                gidIndex,
                serviceLevel,
                trafficClass,
                hopLimit,
                maxOutstanding,
                cqEntries,
                ackTimeout,
                retryCount,
                rnrRetry,
                drainMillis,
                sysfsRoot);
    }

    public RdmaSettings withSysfsRoot(Path root) {
        return new RdmaSettings(
                devices,
                port,
                gidIndex,
                serviceLevel,
                trafficClass,
                hopLimit,
                maxOutstanding,
                cqEntries,
                ackTimeout,
                retryCount,
                rnrRetry,
                drainMillis,
                root);
    }

    public RdmaSettings withQueues(int outstanding, int cq, long drain) {
        return new RdmaSettings(
                devices,
                port,
                gidIndex,
                serviceLevel,
                trafficClass,
                hopLimit,
                outstanding,
                cq,
                ackTimeout,
                retryCount,
                rnrRetry,
                drain,
                sysfsRoot);
    }
}
