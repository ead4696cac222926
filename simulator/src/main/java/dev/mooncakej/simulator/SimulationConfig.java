package dev.mooncakej.simulator;

import dev.mooncakej.scheduler.SchedulerConfig;

/**
 * A simulated cluster: the scheduler's settings plus instance counts, cache capacity and chunking.
 *
 * @param cacheBlocks  prefix-cache capacity of each prefill instance, in blocks (0: unbounded)
 * @param chunkTokens  prefill chunk size (each chunk pays the fixed prefill cost once)
 */
public record SimulationConfig(SchedulerConfig scheduler, int prefill, int decode, int cacheBlocks, int chunkTokens) {
    public SimulationConfig {
        if (prefill < 1 || prefill > 64)
            throw new IllegalArgumentException("--prefill " + prefill + ": expected 1..64 instances");
        if (decode < 1) throw new IllegalArgumentException("--decode " + decode + ": expected at least 1 instance");
        if (cacheBlocks < 0)
            throw new IllegalArgumentException("--cache-blocks " + cacheBlocks + ": expected >= 0 (0: unbounded)");
        if (chunkTokens < 1) throw new IllegalArgumentException("chunk tokens must be >= 1, got " + chunkTokens);
    }
}
