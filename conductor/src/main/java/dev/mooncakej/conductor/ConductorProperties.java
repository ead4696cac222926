package dev.mooncakej.conductor;

import dev.mooncakej.conductor.tools.ToolCallFormat;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.PrefillPolicy;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code mooncakej.conductor.*}: the model whose tokenizer and chat template the conductor uses, the
 * workers, and request limits. Validated once at start-up; a bad value fails start-up naming the key.
 */
@ConfigurationProperties("mooncakej.conductor")
public record ConductorProperties(
        String model,
        String modelName,
        List<String> prefillWorkers,
        List<String> decodeWorkers,
        Integer blockTokens,
        Integer defaultMaxTokens,
        Long workerTimeoutMillis,
        Integer retryAfterSeconds,
        String policy,
        String admission,
        Double ttftSloSeconds,
        Double tbtSloSeconds,
        Long decodeKvTokens,
        Double kvcacheBalancingThreshold,
        String apiKeysFile,
        Integer apiKeyMaxConcurrent,
        Integer apiKeyRequestsPerMinute,
        Long apiKeyTokensPerMinute,
        Long maxBodyBytes,
        Boolean workerChannel,
        Boolean apiKeyPublicMetrics,
        List<String> modelAliases,
        Long stallTimeoutMillis,
        String toolParser,
        Long prefillDeadlineMillis,
        Boolean takeFromPool) {

    public ConductorProperties {
        if (model == null || model.isBlank())
            throw new IllegalArgumentException(
                    "mooncakej.conductor.model is missing: expected the path of the GGUF model the workers serve");
        if (!Files.isRegularFile(Path.of(model)))
            throw new IllegalArgumentException(
                    "mooncakej.conductor.model=" + model + ": no such file; expected the path of a GGUF model file");
        prefillWorkers = checkUrls("mooncakej.conductor.prefill-workers", prefillWorkers);
        decodeWorkers = checkUrls("mooncakej.conductor.decode-workers", decodeWorkers);
        blockTokens = blockTokens == null ? 32 : blockTokens;
        defaultMaxTokens = defaultMaxTokens == null ? 256 : defaultMaxTokens;
        workerTimeoutMillis = workerTimeoutMillis == null ? 120_000L : workerTimeoutMillis;
        retryAfterSeconds = retryAfterSeconds == null ? 1 : retryAfterSeconds;
        if (blockTokens < 1 || blockTokens > 4096)
            throw new IllegalArgumentException("mooncakej.conductor.block-tokens=" + blockTokens
                    + ": expected 1..4096 (the workers' KV block size)");
        if (defaultMaxTokens < 1)
            throw new IllegalArgumentException(
                    "mooncakej.conductor.default-max-tokens=" + defaultMaxTokens + ": expected a positive number");
        if (workerTimeoutMillis < 1)
            throw new IllegalArgumentException("mooncakej.conductor.worker-timeout-millis=" + workerTimeoutMillis
                    + ": expected a positive number of milliseconds");
        if (retryAfterSeconds < 0 || retryAfterSeconds > 3600)
            throw new IllegalArgumentException(
                    "mooncakej.conductor.retry-after-seconds=" + retryAfterSeconds + ": expected 0..3600");
        if (modelName != null && modelName.isBlank())
            throw new IllegalArgumentException(
                    "mooncakej.conductor.model-name is blank: expected the model id clients send (or leave it unset "
                            + "for the GGUF file's name)");
        policy = policy == null ? "kvcache-centric" : policy;
        admission = admission == null ? "none" : admission;
        try {
            PrefillPolicy.parse(policy);
            AdmissionMode.parse(admission);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    e.getMessage().startsWith("mooncakej")
                            ? e.getMessage()
                            : "mooncakej.conductor." + (e.getMessage().startsWith("admission") ? "admission" : "policy")
                                    + ": " + e.getMessage());
        }
        ttftSloSeconds = ttftSloSeconds == null ? 30.0 : ttftSloSeconds;
        tbtSloSeconds = tbtSloSeconds == null ? 0.1 : tbtSloSeconds;
        decodeKvTokens = decodeKvTokens == null ? 1_000_000L : decodeKvTokens;
        if (!(ttftSloSeconds > 0))
            throw new IllegalArgumentException("mooncakej.conductor.ttft-slo-seconds=" + ttftSloSeconds
                    + ": expected a positive number of seconds");
        if (!(tbtSloSeconds > 0))
            throw new IllegalArgumentException(
                    "mooncakej.conductor.tbt-slo-seconds=" + tbtSloSeconds + ": expected a positive number of seconds");
        kvcacheBalancingThreshold = kvcacheBalancingThreshold == null ? 1.0 : kvcacheBalancingThreshold;
        apiKeysFile = apiKeysFile == null || apiKeysFile.isBlank() ? null : apiKeysFile;
        maxBodyBytes = maxBodyBytes == null ? 4L << 20 : maxBodyBytes;
        workerChannel = workerChannel == null || workerChannel;
        apiKeyPublicMetrics = apiKeyPublicMetrics != null && apiKeyPublicMetrics;
        stallTimeoutMillis = stallTimeoutMillis == null ? 10_000L : stallTimeoutMillis;
        if (stallTimeoutMillis < 200 || stallTimeoutMillis > 600_000)
            throw new IllegalArgumentException("mooncakej.conductor.stall-timeout-millis=" + stallTimeoutMillis
                    + ": expected 200..600000 (how long a worker may answer nothing before its calls fail and it"
                    + " leaves scheduling)");
        modelAliases = modelAliases == null ? List.of() : List.copyOf(modelAliases);
        prefillDeadlineMillis = prefillDeadlineMillis == null ? 30_000L : prefillDeadlineMillis;
        if (prefillDeadlineMillis < 100 || prefillDeadlineMillis > 3_600_000)
            throw new IllegalArgumentException("mooncakej.conductor.prefill-deadline-millis=" + prefillDeadlineMillis
                    + ": expected 100..3600000 (the least time a prefill and its KV transfer get before they are"
                    + " aborted and the request placed again; 3x the predicted TTFT when that is longer)");
        takeFromPool = takeFromPool == null || takeFromPool;
        toolParser = toolParser == null || toolParser.isBlank() ? "auto" : toolParser;
        ToolCallFormat.configured(toolParser, "mooncakej.conductor.tool-parser"); // fails start-up naming the key
        for (String a : modelAliases)
            if (a == null || !a.matches("[A-Za-z0-9._:/@+-]{1,128}"))
                throw new IllegalArgumentException("mooncakej.conductor.model-aliases entry '" + a
                        + "': expected 1-128 of [A-Za-z0-9._:/@+-] (another name clients may send as model)");
        if (maxBodyBytes < 1024 || maxBodyBytes > (15L << 20))
            throw new IllegalArgumentException("mooncakej.conductor.max-body-bytes=" + maxBodyBytes
                    + ": expected 1024..15728640 (the codec buffers at most 16 MiB)");
        apiKeyMaxConcurrent = apiKeyMaxConcurrent == null ? 16 : apiKeyMaxConcurrent;
        apiKeyRequestsPerMinute = apiKeyRequestsPerMinute == null ? 600 : apiKeyRequestsPerMinute;
        apiKeyTokensPerMinute = apiKeyTokensPerMinute == null ? 2_000_000L : apiKeyTokensPerMinute;
        if (apiKeyMaxConcurrent < 1 || apiKeyRequestsPerMinute < 1 || apiKeyTokensPerMinute < 1)
            throw new IllegalArgumentException("mooncakej.conductor.api-key-max-concurrent=" + apiKeyMaxConcurrent
                    + ", api-key-requests-per-minute=" + apiKeyRequestsPerMinute + ", api-key-tokens-per-minute="
                    + apiKeyTokensPerMinute + ": expected positive limits");
        if (!(kvcacheBalancingThreshold >= 1))
            throw new IllegalArgumentException("mooncakej.conductor.kvcache-balancing-threshold="
                    + kvcacheBalancingThreshold + ": expected a number >= 1 (fetch a longer prefix only when it is "
                    + "this many times the local one, and cheaper than computing it)");
        if (decodeKvTokens < 1)
            throw new IllegalArgumentException(
                    "mooncakej.conductor.decode-kv-tokens=" + decodeKvTokens + ": expected a positive token count");
    }

    private static List<String> checkUrls(String key, List<String> urls) {
        if (urls == null) return List.of();
        for (String u : urls) {
            try {
                URI uri = URI.create(u);
                if (!"http".equals(uri.getScheme()) || uri.getHost() == null) throw new IllegalArgumentException();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(
                        key + " entry '" + u + "': expected a URL like http://127.0.0.1:8100");
            }
        }
        return List.copyOf(urls);
    }
}
