package dev.mooncakej.prefill;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code mooncakej.prefill.*} keys only a prefill worker takes: {@code chunk-tokens}, the tokens of one
 * forward pass of a long prompt; {@code drain-budget-seconds}, how long a worker that leaves (SIGTERM,
 * {@code POST /internal/drain}) may take to finish or hand back its queue before it exits. The keys
 * both workers take (model, KV slab, transfer, engine, conductor) are {@link
 * dev.mooncakej.worker.WorkerKeys}, bound under the same prefix.
 */
@ConfigurationProperties("mooncakej.prefill")
public record PrefillProperties(Integer chunkTokens, Integer drainBudgetSeconds) {
    public static final String PREFIX = "mooncakej.prefill";

    public PrefillProperties {
        chunkTokens = chunkTokens == null ? 256 : chunkTokens;
        drainBudgetSeconds = drainBudgetSeconds == null ? 30 : drainBudgetSeconds;
        if (chunkTokens < 1 || chunkTokens > 8192)
            throw new IllegalArgumentException("mooncakej.prefill.chunk-tokens=" + chunkTokens + ": expected 1..8192");
        if (drainBudgetSeconds < 1 || drainBudgetSeconds > 3600)
            throw new IllegalArgumentException("mooncakej.prefill.drain-budget-seconds=" + drainBudgetSeconds
                    + ": expected 1..3600 (keep the pod's terminationGracePeriodSeconds above it)");
    }
}
