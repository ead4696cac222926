package dev.mooncakej.prefill;

import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.select.EngineSettings;
import dev.mooncakej.kvcache.Redacted;
import dev.mooncakej.kvtransfer.engine.TransferConfig;
import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.springframework.boot.context.properties.ConfigurationProperties;

/** {@code mooncakej.prefill.*}: model, KV pool, chunking and transfer settings of this prefill worker. */
@ConfigurationProperties("mooncakej.prefill")
public record PrefillProperties(
        String model,
        Integer blockTokens,
        Integer kvBlocks,
        Integer chunkTokens,
        Integer threads,
        String kvHost,
        Integer kvPort,
        Long kvTimeoutMillis,
        String kvSecret,
        String kvTransports,
        String kvShmDir,
        Map<String, String> kvRdma,
        String engine,
        String simProfile,
        Double simTimeScale,
        String conductorUrl,
        Double calibrationSeconds) {

    public PrefillProperties {
        if (model == null || model.isBlank())
            throw new IllegalArgumentException(
                    "mooncakej.prefill.model is missing: expected the path of a GGUF model file");
        if (!Files.isRegularFile(Path.of(model)))
            throw new IllegalArgumentException(
                    "mooncakej.prefill.model=" + model + ": no such file; expected the path of a GGUF model file");
        if (kvSecret == null || kvSecret.length() < 16) {
            throw new IllegalArgumentException(
                    "mooncakej.prefill.kv-secret is " + (kvSecret == null ? "missing" : "shorter than 16 characters")
                            + ": expected the cluster secret that prefill and decode workers share (./mooncakej up "
                            + "makes a random one)");
        }
        calibrationSeconds = calibrationSeconds == null ? 3.0 : calibrationSeconds;
        if (!(calibrationSeconds >= 0 && calibrationSeconds <= 60))
            throw new IllegalArgumentException("mooncakej.prefill.calibration-seconds=" + calibrationSeconds
                    + ": expected 0..60 (the start-up measurement of the engine; 0: none)");
        blockTokens = blockTokens == null ? LlamaEngine.Config.DEFAULT_BLOCK_TOKENS : blockTokens;
        kvBlocks = kvBlocks == null ? 0 : kvBlocks;
        chunkTokens = chunkTokens == null ? 256 : chunkTokens;
        threads = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
        kvHost = kvHost == null ? "127.0.0.1" : kvHost;
        kvPort = kvPort == null ? 0 : kvPort;
        kvTimeoutMillis = kvTimeoutMillis == null ? 30_000L : kvTimeoutMillis;
        kvTransports = kvTransports == null ? "rdma,shm,tcp" : kvTransports;
        kvShmDir = kvShmDir == null ? "/dev/shm" : kvShmDir;
        simTimeScale = simTimeScale == null ? 1.0 : simTimeScale;
        if (conductorUrl != null && !conductorUrl.matches("https?://[A-Za-z0-9.:\\[\\]_-]+(:\\d+)?")) {
            throw new IllegalArgumentException(
                    "mooncakej.prefill.conductor-url=" + conductorUrl + ": expected a URL like http://127.0.0.1:8000");
        }
        if (chunkTokens < 1 || chunkTokens > 8192)
            throw new IllegalArgumentException("mooncakej.prefill.chunk-tokens=" + chunkTokens + ": expected 1..8192");
        if (blockTokens < 1 || blockTokens > 4096)
            throw new IllegalArgumentException("mooncakej.prefill.block-tokens=" + blockTokens
                    + ": expected 1..4096 (the same on every worker and the conductor)");
        if (kvBlocks < 0)
            throw new IllegalArgumentException(
                    "mooncakej.prefill.kv-blocks=" + kvBlocks + ": expected 0 (4 x context) or a positive block count");
        if (threads < 1 || threads > 1024)
            throw new IllegalArgumentException("mooncakej.prefill.threads=" + threads + ": expected 1..1024");
        if (!kvHost.matches("[A-Za-z0-9.:_-]+"))
            throw new IllegalArgumentException(
                    "mooncakej.prefill.kv-host=" + kvHost + ": expected a host name or address");
        // validates the kv-* keys now, naming the bad one (fields are not assigned yet in a compact constructor)
        WorkerSegment.config(
                "mooncakej.prefill.kv-", kvTransports, kvShmDir, kvHost, kvPort, kvSecret, kvTimeoutMillis, kvRdma);
        new EngineSettings(
                "mooncakej.prefill.",
                engine,
                Path.of(model),
                blockTokens,
                kvBlocks,
                chunkTokens,
                threads,
                simProfile,
                simTimeScale);
    }

    TransferConfig transferConfig() {
        return WorkerSegment.config(
                "mooncakej.prefill.kv-", kvTransports, kvShmDir, kvHost, kvPort, kvSecret, kvTimeoutMillis, kvRdma);
    }

    EngineSettings engineSettings() {
        return new EngineSettings(
                "mooncakej.prefill.",
                engine,
                Path.of(model),
                blockTokens,
                kvBlocks,
                chunkTokens,
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
