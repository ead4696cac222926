package dev.mooncakej.worker;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.engine.spi.Calibration;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerProfile;
import dev.mooncakej.kvstore.client.SsdTier;
import dev.mooncakej.kvstore.client.WorkerStoreSettings;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.nio.file.Path;

/**
 * A worker composed in order: its transfer segment (published in etcd in a cluster, else in the host's
 * registry), then the engine, whose KV slab is the segment's registered memory, so peers write KV
 * straight into it; the pool DRAM of {@code mooncakej.store.dram-bytes} sits beside the slab in the same
 * segment. Closing goes the other way. Starts no thread.
 */
public final class WorkerRuntime implements AutoCloseable {
    private final String role;
    private final WorkerSettings settings;
    private final WorkerStoreSettings store;
    private final WorkerSegment segment;
    private final InferenceEngine engine;

    private WorkerRuntime(
            String role, WorkerSettings settings, WorkerStoreSettings store, SegmentMetadata metadata, int maxRows) {
        this.role = role;
        this.settings = settings;
        this.store = store;
        try {
            this.segment = new WorkerSegment(role, settings.transferConfig(), metadata, store.dramBytes());
        } catch (RuntimeException e) {
            metadata.close();
            throw e;
        }
        try {
            this.engine = settings.engineSettings(maxRows).create(segment.kvMemory());
        } catch (RuntimeException e) {
            segment.close();
            throw e;
        }
    }

    /**
     * Starts a worker of {@code role} ({@code prefill} or {@code decode}) whose forward pass takes up
     * to {@code maxRows} rows (the prefill chunk or the decode batch), its segment's metadata where
     * {@code cluster} says (etcd, or the host registry in the shm directory).
     */
    public static WorkerRuntime start(
            String role, WorkerSettings settings, int maxRows, ClusterSettings cluster, WorkerStoreSettings store) {
        SegmentMetadata metadata = WorkerSegment.metadata(
                cluster.etcd(), cluster.prefix(), cluster.leaseTtlSeconds(), Path.of(settings.kvShmDir()));
        return start(role, settings, maxRows, metadata, store);
    }

    /** As {@link #start(String, WorkerSettings, int, ClusterSettings, WorkerStoreSettings)}, on given metadata. */
    public static WorkerRuntime start(
            String role, WorkerSettings settings, int maxRows, SegmentMetadata metadata, WorkerStoreSettings store) {
        return new WorkerRuntime(role, settings, store, metadata, maxRows);
    }

    /**
     * Measures the engine within {@code calibration-seconds}: prefill lengths up to chunks of {@code
     * chunkTokens} on a prefill worker, decode steps at a few batch sizes on a decode worker. The profile
     * is what the conductor reads at admission ({@code GET /internal/profile}). The caller holds the
     * engine's lock.
     */
    public WorkerProfile calibrate(int chunkTokens) {
        return Calibration.profile(role, engine, settings.model(), chunkTokens, settings.calibrationSeconds());
    }

    /** This worker's SSD tier ({@code mooncakej.store.ssd-dir}), or null without one. */
    public SsdTier newSsdTier() {
        return store.ssdDir() == null
                ? null
                : new SsdTier(
                        store.ssdDir(),
                        segment.name(),
                        store.ssdBytes(),
                        engine.kvCache().layout().blockBytes());
    }

    public String role() {
        return role;
    }

    public WorkerSettings settings() {
        return settings;
    }

    public WorkerStoreSettings store() {
        return store;
    }

    public WorkerSegment segment() {
        return segment;
    }

    public InferenceEngine engine() {
        return engine;
    }

    public TransferEngine transfer() {
        return segment.engine();
    }

    @Override
    public void close() {
        try {
            engine.close();
        } finally {
            segment.close();
        }
    }
}
