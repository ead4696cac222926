package dev.mooncakej.scheduler;

import dev.mooncakej.kvcache.cost.CostProfile;

/**
 * Everything the scheduler decides with, validated once.
 *
 * @param balancingThreshold  kvcache-centric: fetch the best remote prefix when best / local > this
 * @param blockTokens         tokens per block of the keys the scheduler sees
 * @param bandwidthBytesPerSecond  KV transfer bandwidth between prefill instances (and to decode)
 * @param decodeKvTokens      KV capacity of one decode instance, in tokens (decode load counts KV in use over this)
 * @param initialDecodeSeconds t_d before any decode has finished (then learnt from history)
 */
public record SchedulerConfig(
        PrefillPolicy policy,
        AdmissionMode admission,
        double ttftSlo,
        double tbtSlo,
        double balancingThreshold,
        int blockTokens,
        CostProfile profile,
        double bandwidthBytesPerSecond,
        long decodeKvTokens,
        double initialDecodeSeconds,
        long seed) {
    public SchedulerConfig {
        if (!(ttftSlo > 0) || !(tbtSlo > 0))
            throw new IllegalArgumentException("SLOs must be positive: ttft " + ttftSlo + " s, tbt " + tbtSlo + " s");
        if (!(balancingThreshold >= 1))
            throw new IllegalArgumentException("kvcache-balancing-threshold must be >= 1, got " + balancingThreshold);
        if (blockTokens < 1) throw new IllegalArgumentException("block tokens must be >= 1, got " + blockTokens);
        if (!(bandwidthBytesPerSecond > 0))
            throw new IllegalArgumentException("transfer bandwidth must be positive, got " + bandwidthBytesPerSecond);
        if (decodeKvTokens < 1)
            throw new IllegalArgumentException(
                    "decode KV capacity must be positive, got " + decodeKvTokens + " tokens");
        if (!(initialDecodeSeconds > 0))
            throw new IllegalArgumentException("initial t_d must be positive, got " + initialDecodeSeconds);
    }
}
