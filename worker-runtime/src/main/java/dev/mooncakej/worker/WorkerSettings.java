package dev.mooncakej.worker;

import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.select.EngineSettings;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * {@link WorkerKeys} checked, with their defaults filled in (the record's text leaves the secret out,
 * as {@link WorkerKeys#toString()} does). A bad value fails start-up with a
 * message naming its key under {@code prefix} ({@code mooncakej.prefill.} or {@code mooncakej.decode.})
 * and the form expected.
 */
public record WorkerSettings(String prefix, WorkerKeys keys) {
    public static final long DEFAULT_KV_TIMEOUT_MILLIS = 30_000;
    public static final String DEFAULT_TRANSPORTS = "rdma,shm,tcp";

    /** The keys checked under {@code prefix} (e.g. {@code mooncakej.decode.}), defaults filled in. */
    public static WorkerSettings of(String prefix, WorkerKeys k) {
        String model = k.model();
        if (model == null || model.isBlank())
            throw new IllegalArgumentException(prefix + "model is missing: expected the path of a GGUF model file");
        if (!Files.isRegularFile(Path.of(model)))
            throw new IllegalArgumentException(
                    prefix + "model=" + model + ": no such file; expected the path of a GGUF model file");
        String secret = k.kvSecret();
        if (secret == null || secret.length() < 16)
            throw new IllegalArgumentException(prefix + "kv-secret is "
                    + (secret == null ? "missing" : "shorter than 16 characters")
                    + ": expected the cluster secret that prefill and decode workers share (./mooncakej up makes"
                    + " a random one)");
        double calibration = or(k.calibrationSeconds(), 3.0);
        if (!(calibration >= 0 && calibration <= 60))
            throw new IllegalArgumentException(prefix + "calibration-seconds=" + calibration
                    + ": expected 0..60 (the start-up measurement of the engine; 0: none)");
        int blockTokens = or(k.blockTokens(), LlamaEngine.Config.DEFAULT_BLOCK_TOKENS);
        if (blockTokens < 1 || blockTokens > 4096)
            throw new IllegalArgumentException(prefix + "block-tokens=" + blockTokens
                    + ": expected 1..4096 (the same on every worker and the conductor)");
        int kvBlocks = or(k.kvBlocks(), 0);
        if (kvBlocks < 0)
            throw new IllegalArgumentException(
                    prefix + "kv-blocks=" + kvBlocks + ": expected 0 (4 x context) or a positive block count");
        int threads = or(k.threads(), Runtime.getRuntime().availableProcessors());
        if (threads < 1 || threads > 1024)
            throw new IllegalArgumentException(prefix + "threads=" + threads + ": expected 1..1024");
        String host = or(k.kvHost(), "127.0.0.1");
        if (!host.matches("[A-Za-z0-9.:_-]+"))
            throw new IllegalArgumentException(prefix + "kv-host=" + host + ": expected a host name or address");
        String conductor = k.conductorUrl();
        if (conductor != null && !conductor.matches("https?://[A-Za-z0-9.:\\[\\]_-]+(:\\d+)?"))
            throw new IllegalArgumentException(
                    prefix + "conductor-url=" + conductor + ": expected a URL like http://127.0.0.1:8000");
        WorkerSettings s = new WorkerSettings(
                prefix,
                new WorkerKeys(
                        model,
                        blockTokens,
                        kvBlocks,
                        threads,
                        host,
                        or(k.kvPort(), 0),
                        or(k.kvTimeoutMillis(), DEFAULT_KV_TIMEOUT_MILLIS),
                        secret,
                        or(k.kvTransports(), DEFAULT_TRANSPORTS),
                        or(k.kvShmDir(), "/dev/shm"),
                        k.kvRdma() == null ? Map.of() : Map.copyOf(k.kvRdma()),
                        k.engine(),
                        k.simProfile(),
                        or(k.simTimeScale(), 1.0),
                        conductor,
                        calibration,
                        k.simReply()));
        s.transferConfig(); // the kv-* keys, each named when bad
        s.engineSettings(1); // engine and sim-*
        return s;
    }

    private static <T> T or(T value, T otherwise) {
        return value == null ? otherwise : value;
    }

    public Path model() {
        return Path.of(keys.model());
    }

    public long kvTimeoutMillis() {
        return keys.kvTimeoutMillis();
    }

    public double calibrationSeconds() {
        return keys.calibrationSeconds();
    }

    public String kvHost() {
        return keys.kvHost();
    }

    public String kvShmDir() {
        return keys.kvShmDir();
    }

    /** The one conductor without etcd, or null. */
    public String conductorUrl() {
        return keys.conductorUrl();
    }

    /** The transfer engine's settings from the {@code kv-*} keys. */
    public TransferConfig transferConfig() {
        return WorkerSegment.config(
                prefix + "kv-",
                keys.kvTransports(),
                keys.kvShmDir(),
                keys.kvHost(),
                keys.kvPort(),
                keys.kvSecret(),
                keys.kvTimeoutMillis(),
                keys.kvRdma());
    }

    /** The engine's settings; {@code maxRows}: the rows of one forward pass (the prefill chunk or decode batch). */
    public EngineSettings engineSettings(int maxRows) {
        return new EngineSettings(
                prefix,
                keys.engine(),
                model(),
                keys.blockTokens(),
                keys.kvBlocks(),
                maxRows,
                keys.threads(),
                keys.simProfile(),
                keys.simTimeScale(),
                keys.simReply());
    }
}
