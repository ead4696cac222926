package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvcache.Redacted;
import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.rdma.RdmaSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * How a {@link TransferEngine} moves data. Defaults follow Mooncake's transfer engine where it has one
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
    public static final List<String> ALL_TRANSPORTS = List.of("rdma", "shm", "tcp");

    public TransferConfig {
        transports = List.copyOf(transports);
        if (transports.isEmpty())
            throw new IllegalArgumentException("transfer transports: expected a non-empty subset of " + ALL_TRANSPORTS);
        for (String t : transports) {
            if (!ALL_TRANSPORTS.contains(t))
                throw new IllegalArgumentException("transfer transport '" + t + "': expected one of " + ALL_TRANSPORTS);
        }
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
        return new TransferConfig(
                ALL_TRANSPORTS,
                shmDir,
                "127.0.0.1",
                0,
                "127.0.0.1",
                secret,
                64 * 1024,
                16 * 1024,
                2,
                256,
                4,
                Duration.ofSeconds(30),
                2,
                3,
                "libibverbs.so.1",
                RdmaSettings.DEFAULTS);
    }

    public TransferConfig withTransports(List<String> t) {
        return new TransferConfig(
                t,
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

    public TransferConfig withListen(String host, int port, String advertise) {
        return new TransferConfig(
                transports,
                shmDir,
                host,
                port,
                advertise,
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

    public TransferConfig withSlicing(int slice, int fragment) {
        return new TransferConfig(
                transports,
                shmDir,
                listenHost,
                listenPort,
                advertiseHost,
                secret,
                slice,
                Math.min(fragment, slice),
                connectionsPerPeer,
                maxEndpoints,
                retryLimit,
                timeout,
                copyThreads,
                downgradeAfter,
                verbsLibrary,
                rdma);
    }

    public TransferConfig withConnections(int perPeer, int max) {
        return new TransferConfig(
                transports,
                shmDir,
                listenHost,
                listenPort,
                advertiseHost,
                secret,
                sliceBytes,
                fragmentLimit,
                perPeer,
                max,
                retryLimit,
                timeout,
                copyThreads,
                downgradeAfter,
                verbsLibrary,
                rdma);
    }

    public TransferConfig withTimeout(Duration t) {
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
                t,
                copyThreads,
                downgradeAfter,
                verbsLibrary,
                rdma);
    }

    public TransferConfig withRetry(int retries, int downgrade) {
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
                retries,
                timeout,
                copyThreads,
                downgrade,
                verbsLibrary,
                rdma);
    }

    public TransferConfig withCopyThreads(int n) {
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
                n,
                downgradeAfter,
                verbsLibrary,
                rdma);
    }

    public TransferConfig withVerbsLibrary(String lib) {
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
                lib,
                rdma);
    }

    public TransferConfig withRdma(RdmaSettings r) {
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
                r);
    }

    /** The record's text with the secret left out (it must never reach a log). */
    @Override
    public String toString() {
        return Redacted.toString(this, "secret");
    }
}
