package dev.mooncakej.decode;

import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.select.EngineSettings;
import dev.mooncakej.kvcache.Redacted;
import dev.mooncakej.kvtransfer.engine.TransferConfig;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code mooncakej.decode.*}: the model, KV pool and batch of this decode worker, and where it
 * receives KV. Validated once at start-up; a bad value fails start-up naming the key.
 */
@ConfigurationProperties("mooncakej.decode")
public record DecodeProperties(
        String model,
        Integer blockTokens,
        Integer kvBlocks,
        Integer maxBatch,
        Integer threads,
        String kvHost,
        Integer kvPort,
        Long kvWaitMillis,
        String kvSecret,
        String kvTransports,
        String kvShmDir,
        Map<String, String> kvRdma,
        Long kvTimeoutMillis,
        String engine,
        String simProfile,
        Double simTimeScale,
        String conductorUrl,
        Long fenceDeadlineMillis,
        Double calibrationSeconds) {

    public DecodeProperties {
        if (model == null || model.isBlank())
            throw new IllegalArgumentException(
                    "mooncakej.decode.model is missing: expected the path of a GGUF model file");
        if (!Files.isRegularFile(Path.of(model)))
            throw new IllegalArgumentException(
                    "mooncakej.decode.model=" + model + ": no such file; expected the path of a GGUF model file");
        if (kvSecret == null || kvSecret.length() < 16) {
            throw new IllegalArgumentException(
                    "mooncakej.decode.kv-secret is " + (kvSecret == null ? "missing" : "shorter than 16 characters")
                            + ": expected the cluster secret that prefill and decode workers share (./mooncakej up "
                            + "makes a random one)");
        }
        calibrationSeconds = calibrationSeconds == null ? 3.0 : calibrationSeconds;
        if (!(calibrationSeconds >= 0 && calibrationSeconds <= 60))
            throw new IllegalArgumentException("mooncakej.decode.calibration-seconds=" + calibrationSeconds
                    + ": expected 0..60 (the start-up measurement of the engine; 0: none)");
        blockTokens = blockTokens == null ? LlamaEngine.Config.DEFAULT_BLOCK_TOKENS : blockTokens;
        kvBlocks = kvBlocks == null ? 0 : kvBlocks;
        maxBatch = maxBatch == null ? 32 : maxBatch;
        threads = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
        kvHost = kvHost == null ? "127.0.0.1" : kvHost;
        kvPort = kvPort == null ? 0 : kvPort;
        kvWaitMillis = kvWaitMillis == null ? 30_000L : kvWaitMillis;
        fenceDeadlineMillis = fenceDeadlineMillis == null ? 30_000L : fenceDeadlineMillis;
        if (fenceDeadlineMillis < 100)
            throw new IllegalArgumentException("mooncakej.decode.fence-deadline-millis=" + fenceDeadlineMillis
                    + ": expected at least 100 (how long a fenced reservation's tcp writer may take to confirm it"
                    + " stopped before it is cut off)");
        kvTransports = kvTransports == null ? "rdma,shm,tcp" : kvTransports;
        kvShmDir = kvShmDir == null ? "/dev/shm" : kvShmDir;
        kvTimeoutMillis = kvTimeoutMillis == null ? 30_000L : kvTimeoutMillis;
        simTimeScale = simTimeScale == null ? 1.0 : simTimeScale;
        if (conductorUrl != null && !conductorUrl.matches("https?://[A-Za-z0-9.:\\[\\]_-]+(:\\d+)?")) {
            throw new IllegalArgumentException(
                    "mooncakej.decode.conductor-url=" + conductorUrl + ": expected a URL like http://127.0.0.1:8000");
        }
        // validates engine and sim-* now, naming the bad key
        new EngineSettings(
                "mooncakej.decode.",
                engine,
                Path.of(model),
                blockTokens,
                kvBlocks,
                maxBatch,
                threads,
                simProfile,
                simTimeScale);
        if (maxBatch < 1 || maxBatch > 1024)
            throw new IllegalArgumentException("mooncakej.decode.max-batch=" + maxBatch + ": expected 1..1024");
        if (blockTokens < 1 || blockTokens > 4096)
            throw new IllegalArgumentException("mooncakej.decode.block-tokens=" + blockTokens
                    + ": expected 1..4096 (the same on every worker and the conductor)");
        if (kvBlocks < 0)
            throw new IllegalArgumentException(
                    "mooncakej.decode.kv-blocks=" + kvBlocks + ": expected 0 (4 x context) or a positive block count");
        if (threads < 1 || threads > 1024)
            throw new IllegalArgumentException("mooncakej.decode.threads=" + threads + ": expected 1..1024");
        if (kvWaitMillis < 1)
            throw new IllegalArgumentException(
                    "mooncakej.decode.kv-wait-millis=" + kvWaitMillis + ": expected a positive number of milliseconds");
        if (!kvHost.matches("[A-Za-z0-9.:_-]+"))
            throw new IllegalArgumentException(
                    "mooncakej.decode.kv-host=" + kvHost + ": expected a host name or address");
        if (kvPort < 0 || kvPort > 65535)
            throw new IllegalArgumentException("mooncakej.decode.kv-port=" + kvPort + ": expected 0..65535");
        // validates the kv-* keys now, naming the bad one (fields are not assigned yet in a compact constructor)
        WorkerSegment.config(
                "mooncakej.decode.kv-", kvTransports, kvShmDir, kvHost, kvPort, kvSecret, kvTimeoutMillis, kvRdma);
    }

    TransferConfig transferConfig() {
        return WorkerSegment.config(
                "mooncakej.decode.kv-", kvTransports, kvShmDir, kvHost, kvPort, kvSecret, kvTimeoutMillis, kvRdma);
    }

    EngineSettings engineSettings() {
        return new EngineSettings(
                "mooncakej.decode.",
                engine,
                Path.of(model),
                blockTokens,
                kvBlocks,
                maxBatch,
                threads,
                simProfile,
                simTimeScale);
    }

    /** The record's text with the secret left out (it must never reach a log). */
    @Override
    public String toString() {
        return Redacted.toString(this, "kvSecret");
    }
}
