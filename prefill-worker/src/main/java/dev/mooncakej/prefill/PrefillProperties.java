package dev.mooncakej.prefill;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code mooncakej.prefill.*} keys only a prefill worker takes: {@code chunk-tokens}, the tokens of one
 * forward pass of a long prompt. The keys both workers take (model, KV slab, transfer, engine,
 * conductor) are {@link dev.mooncakej.worker.WorkerKeys}, bound under the same prefix.
 */
@ConfigurationProperties("mooncakej.prefill")
public record PrefillProperties(Integer chunkTokens) {
    public static final String PREFIX = "mooncakej.prefill";

    public PrefillProperties {
        chunkTokens = chunkTokens == null ? 256 : chunkTokens;
        if (chunkTokens < 1 || chunkTokens > 8192)
            throw new IllegalArgumentException("mooncakej.prefill.chunk-tokens=" + chunkTokens + ": expected 1..8192");
    }
}
