package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transports;
import dev.mooncakej.kvtransfer.verbs.RdmaSettings;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import java.util.regex.Pattern;

/**
 * A worker's transfer segment: the transfer engine is created when the inference engine asks for its
 * KV cache memory, so the whole KV slab is the segment's registered buffer (peers write KV straight
 * into it, and it is sent straight from it). Named {@code <role>-<host>-<pid>}, unique in a cluster.
 */
public final class WorkerSegment implements AutoCloseable {
    private final String name;
    private final TransferConfig config;
    private final SegmentMetadata metadata;
    private volatile TransferEngine engine;
    private final long poolBytes;
    private volatile MemorySegment pool;

    public WorkerSegment(String role, TransferConfig config, SegmentMetadata metadata) {
        this(role, config, metadata, 0);
    }

    /**
     * @param poolBytes DRAM beside the KV slab that this worker contributes to the KV pool (0: none); in
     *     the same registered segment, so peers reach it as they reach the slab
     */
    public WorkerSegment(String role, TransferConfig config, SegmentMetadata metadata, long poolBytes) {
        if (poolBytes < 0) throw new IllegalArgumentException("pool bytes " + poolBytes + ": expected >= 0");
        this.poolBytes = poolBytes;
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (Exception e) {
            host = "host";
        }
        String raw = role + "-" + host + "-" + ProcessHandle.current().pid();
        raw = raw.replaceAll("[^A-Za-z0-9._-]", "_");
        this.name = raw.length() > 64 ? raw.substring(raw.length() - 64) : raw;
        this.config = config;
        this.metadata = metadata;
        removeStaleSegments(config.shmDir(), role);
    }

    /**
     * Segment files of this role's workers whose process is gone (killed before it could delete its
     * file) are removed, so a host that restarts workers does not fill its /dev/shm. A file whose pid
     * belongs to a live process is left alone.
     */
    static int removeStaleSegments(Path dir, String role) {
        int removed = 0;
        try (var files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                var m = Pattern.compile("mooncakej-" + Pattern.quote(role) + "-.*-(\\d+)\\.(seg|json)")
                        .matcher(f.getFileName().toString());
                if (!m.matches()) continue;
                long pid = Long.parseLong(m.group(1));
                if (ProcessHandle.of(pid).isPresent()) continue;
                if (!deadSegmentFileOfOurs(f)) continue;
                try {
                    Files.deleteIfExists(f);
                    removed++;
                } catch (IOException ignored) {
                    // another worker got there first, or no permission: leave it
                }
            }
        } catch (IOException | RuntimeException e) {
            // best effort: an unreadable directory fails later with its own message
        }
        return removed;
    }

    /**
     * Whether a file the sweep found may be deleted: a regular file (never through a link) owned by
     * the user this worker runs as, as its own segment files are; anything else is left alone.
     */
    static boolean deadSegmentFileOfOurs(Path f) {
        try {
            return Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)
                    && Files.getOwner(f, LinkOption.NOFOLLOW_LINKS).getName().equals(System.getProperty("user.name"));
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * The transfer settings of a worker, validated; a bad value names its key under {@code keyPrefix}
     * (e.g. {@code mooncakej.decode.kv-}), the rdma keys included ({@code <keyPrefix>rdma.port},
     * {@code ...rdma.gid-index}, ...; see {@link dev.mooncakej.kvtransfer.verbs.RdmaSettings#KEYS}).
     */
    public static TransferConfig config(
            String keyPrefix,
            String transports,
            String shmDir,
            String host,
            int port,
            String secret,
            long timeoutMillis,
            Map<String, String> rdma) {
        RdmaSettings rdmaSettings = RdmaSettings.fromKeys(keyPrefix + "rdma.", rdma);
        List<String> ts = Arrays.stream(transports.split(","))
                .map(String::trim)
                .filter(s -> !s.isEmpty())
                .toList();
        for (String t : ts) {
            if (!Transports.names().contains(t))
                throw new IllegalArgumentException(keyPrefix + "transports=" + transports
                        + ": expected a comma-separated subset of " + Transports.names());
        }
        if (ts.isEmpty())
            throw new IllegalArgumentException(
                    keyPrefix + "transports is empty: expected a comma-separated subset of " + Transports.names());
        if (!ts.contains("tcp"))
            throw new IllegalArgumentException(keyPrefix + "transports=" + transports
                    + ": expected tcp among them (notifications and the fallback path use it)");
        if (!Files.isDirectory(Path.of(shmDir)))
            throw new IllegalArgumentException(keyPrefix + "shm-dir=" + shmDir
                    + ": no such directory; expected a tmpfs directory such as /dev/shm");
        if (port < 0 || port > 65535)
            throw new IllegalArgumentException(keyPrefix + "port=" + port + ": expected 0..65535");
        if (timeoutMillis < 1)
            throw new IllegalArgumentException(
                    keyPrefix + "timeout-millis=" + timeoutMillis + ": expected a positive number of milliseconds");
        try {
            return TransferConfig.defaults(secret, Path.of(shmDir))
                    .withTransports(ts)
                    .withListen(host, port, host)
                    .withTimeout(Duration.ofMillis(timeoutMillis))
                    .withRdma(rdmaSettings);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(keyPrefix + "*: " + e.getMessage(), e);
        }
    }

    /**
     * Where a worker publishes and looks up segments: etcd in a cluster (under its own lease), else the
     * host-local registry in the shm directory. These are the only sources of descriptors a worker trusts.
     */
    public static SegmentMetadata metadata(EtcdAccess etcd, String prefix, long leaseTtlSeconds, Path shmDir) {
        return etcd == null
                ? new LocalSegmentRegistry(shmDir)
                : new EtcdSegmentMetadata(
                        etcd,
                        prefix,
                        leaseTtlSeconds,
                        Duration.ofSeconds(30)); // a busy host's first etcd call can be slow
    }

    public String name() {
        return name;
    }

    /** What the inference engine calls for its KV slab: creates the transfer engine and registers the slab. */
    public LongFunction<MemorySegment> kvMemory() {
        return bytes -> {
            synchronized (this) {
                if (engine != null)
                    throw new IllegalStateException("the KV memory of segment '" + name + "' was already allocated");
                engine = new TransferEngine(name, metadata, bytes + (poolBytes > 0 ? poolBytes + 64 : 0), config);
                MemorySegment slab = engine.allocate(bytes, "cpu:0");
                if (poolBytes > 0) pool = engine.allocate(poolBytes, "cpu:0");
                return slab;
            }
        };
    }

    /** The engine (after {@link #kvMemory()} was used). */
    public TransferEngine engine() {
        TransferEngine e = engine;
        if (e == null) throw new IllegalStateException("segment '" + name + "' has no memory yet");
        return e;
    }

    /** The KV pool's DRAM in this segment, or null when the worker contributes none. */
    public MemorySegment poolMemory() {
        return pool;
    }

    public SegmentMetadata metadata() {
        return metadata;
    }

    @Override
    public void close() {
        if (engine != null) engine.close();
        metadata.close();
    }
}
