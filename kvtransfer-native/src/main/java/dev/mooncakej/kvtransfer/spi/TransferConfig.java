package dev.mooncakej.kvtransfer.spi;

import dev.mooncakej.kvcache.Redacted;
import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.verbs.RdmaSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * How the transfer engine moves data. Defaults follow Mooncake's transfer engine where it has one
 * (64 KiB slices, a 16 KiB fragment limit, two connections per peer, a capped endpoint pool).
 *
 * @param transports        allowed transports, in order of preference ({@code rdma}, {@code shm}, {@code tcp})
 * @param shmDir            where the segment file lives ({@code /dev/shm} on Linux)
 * @param listenHost        address the tcp transport listens on (also the control channel for notifications)
 * @param listenPort        its port (0: any free port)
 * @param advertiseHost     the address peers use to reach this process
 * @param secret            cluster secret every peer must prove it holds (HMAC challenge), at least 16 bytes
 * @param sliceBytes        a request is cut into slices of this size
 * @param fragmentLimit     a tail of at most this size joins the previous slice
 * @param connectionsPerPeer tcp connections per peer, slices striped over them
 * @param maxEndpoints      endpoint (connection) pool cap, SIEVE eviction beyond it
 * @param retryLimit        times a failed slice is retried on another path
 * @param timeout           a batch not finished after this has its unfinished requests TIMEOUT
 * @param copyThreads       shm copy threads for large batches
 * @param downgradeAfter    consecutive transport errors with one peer before the next transport is used
 * @param verbsLibrary      the libibverbs to load for rdma ({@code libibverbs.so.1}; tests point it at a fake provider)
 * @param rdma              port, GID, service level and queue settings of the rdma transport
 */
public record TransferConfig(
        List<String> transports,
        Path shmDir,
        String listenHost,
        int listenPort,
        String advertiseHost,
        String secret,
        int sliceBytes,
        int fragmentLimit,
        int connectionsPerPeer,
        int maxEndpoints,
        int retryLimit,
        Duration timeout,
        int copyThreads,
        int downgradeAfter,
        String verbsLibrary,
        RdmaSettings rdma) {
    /** The transports an engine tries by default, in order of preference. */
    public static final List<String> DEFAULT_TRANSPORTS = List.of("rdma", "shm", "tcp");

    public TransferConfig {
        transports = List.copyOf(transports);
        if (transports.isEmpty())
            throw new IllegalArgumentException(
                    "transfer transports: expected a non-empty subset of " + Transports.names());
        for (String t : transports) Transports.provider(t); // an unknown name is refused, naming the ones there are
        require(sliceBytes >= 4096 && sliceBytes <= (64 << 20), "slice-bytes", sliceBytes, "4096..67108864");
        require(fragmentLimit >= 0 && fragmentLimit <= sliceBytes, "fragment-limit", fragmentLimit, "0..slice-bytes");
        require(
                connectionsPerPeer >= 1 && connectionsPerPeer <= 64,
                "connections-per-peer",
                connectionsPerPeer,
                "1..64");
        require(
                maxEndpoints >= connectionsPerPeer,
                "max-endpoints",
                maxEndpoints,
                ">= connections-per-peer (" + connectionsPerPeer + ")");
        require(retryLimit >= 0 && retryLimit <= 64, "retry-limit", retryLimit, "0..64");
        require(copyThreads >= 1 && copyThreads <= 64, "copy-threads", copyThreads, "1..64");
        require(downgradeAfter >= 1, "downgrade-after", downgradeAfter, ">= 1");
        require(listenPort >= 0 && listenPort <= 65535, "listen-port", listenPort, "0..65535");
        if (timeout == null || timeout.isNegative() || timeout.isZero())
            throw new IllegalArgumentException("transfer timeout '" + timeout + "': expected a positive duration");
        new PeerAuth(secret); // validates the secret with its own message
        if (rdma == null) rdma = RdmaSettings.DEFAULTS;
        if (verbsLibrary == null || verbsLibrary.isBlank())
            throw new IllegalArgumentException(
                    "transfer verbs-library: expected a library name or path such as libibverbs.so.1");
    }

    private static void require(boolean ok, String key, long value, String expected) {
        if (!ok) throw new IllegalArgumentException("transfer " + key + " " + value + ": expected " + expected);
    }

    /** Loopback defaults: every transport, ephemeral port, 64 KiB slices, 30 s timeout. */
    public static TransferConfig defaults(String secret, Path shmDir) {
        return builder(secret, shmDir).build();
    }

    /** A builder from the loopback defaults ({@link #defaults}). */
    public static Builder builder(String secret, Path shmDir) {
        return new Builder(secret, shmDir);
    }

    /** A builder holding this configuration, to change some settings of it. */
    public Builder toBuilder() {
        Builder b = new Builder(secret, shmDir);
        b.transports = transports;
        b.listenHost = listenHost;
        b.listenPort = listenPort;
        b.advertiseHost = advertiseHost;
        b.sliceBytes = sliceBytes;
        b.fragmentLimit = fragmentLimit;
        b.connectionsPerPeer = connectionsPerPeer;
        b.maxEndpoints = maxEndpoints;
        b.retryLimit = retryLimit;
        b.timeout = timeout;
        b.copyThreads = copyThreads;
        b.downgradeAfter = downgradeAfter;
        b.verbsLibrary = verbsLibrary;
        b.rdma = rdma;
        return b;
    }

    public TransferConfig withTransports(List<String> t) {
        return toBuilder().transports(t).build();
    }

    public TransferConfig withListen(String host, int port, String advertise) {
        return toBuilder().listen(host, port, advertise).build();
    }

    public TransferConfig withSlicing(int slice, int fragment) {
        return toBuilder().slicing(slice, fragment).build();
    }

    public TransferConfig withConnections(int perPeer, int max) {
        return toBuilder().connections(perPeer, max).build();
    }

    public TransferConfig withTimeout(Duration t) {
        return toBuilder().timeout(t).build();
    }

    public TransferConfig withRetry(int retries, int downgrade) {
        return toBuilder().retry(retries, downgrade).build();
    }

    public TransferConfig withCopyThreads(int n) {
        return toBuilder().copyThreads(n).build();
    }

    public TransferConfig withVerbsLibrary(String lib) {
        return toBuilder().verbsLibrary(lib).build();
    }

    public TransferConfig withRdma(RdmaSettings r) {
        return toBuilder().rdma(r).build();
    }

    /** Settings one at a time, checked together by {@link #build()} (the record's constructor). */
    public static final class Builder {
        private final String secret;
        private final Path shmDir;
        private List<String> transports = DEFAULT_TRANSPORTS;
        private String listenHost = "127.0.0.1";
        private int listenPort = 0;
        private String advertiseHost = "127.0.0.1";
        private int sliceBytes = 64 * 1024;
        private int fragmentLimit = 16 * 1024;
        private int connectionsPerPeer = 2;
        private int maxEndpoints = 256;
        private int retryLimit = 4;
        private Duration timeout = Duration.ofSeconds(30);
        private int copyThreads = 2;
        private int downgradeAfter = 3;
        private String verbsLibrary = "libibverbs.so.1";
        private RdmaSettings rdma = RdmaSettings.DEFAULTS;

        private Builder(String secret, Path shmDir) {
            this.secret = secret;
            this.shmDir = shmDir;
        }

        public Builder transports(List<String> t) {
            transports = t;
            return this;
        }

        public Builder listen(String host, int port, String advertise) {
            listenHost = host;
            listenPort = port;
            advertiseHost = advertise;
            return this;
        }

        public Builder slicing(int slice, int fragment) {
            sliceBytes = slice;
            fragmentLimit = Math.min(fragment, slice); // a fragment limit never above the slice
            return this;
        }

        public Builder connections(int perPeer, int max) {
            connectionsPerPeer = perPeer;
            maxEndpoints = max;
            return this;
        }

        public Builder timeout(Duration t) {
            timeout = t;
            return this;
        }

        public Builder retry(int retries, int downgrade) {
            retryLimit = retries;
            downgradeAfter = downgrade;
            return this;
        }

        public Builder copyThreads(int n) {
            copyThreads = n;
            return this;
        }

        public Builder verbsLibrary(String lib) {
            verbsLibrary = lib;
            return this;
        }

        public Builder rdma(RdmaSettings r) {
            rdma = r;
            return this;
        }

        /** The configuration; a bad setting fails here, naming it. */
        public TransferConfig build() {
            return new TransferConfig(
                    transports,
                    shmDir,
                    listenHost,
                    listenPort,
                    advertiseHost,
                    secret,
                    sliceBytes,
                    fragmentLimit,
                    connectionsPerPeer,
                    maxEndpoints,
                    retryLimit,
                    timeout,
                    copyThreads,
                    downgradeAfter,
                    verbsLibrary,
                    rdma);
        }
    }

    /** The record's text with the secret left out (it must never reach a log). */
    @Override
    public String toString() {
        return Redacted.toString(this, "secret");
    }
}
