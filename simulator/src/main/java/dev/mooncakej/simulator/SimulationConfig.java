package dev.mooncakej.simulator;

import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.SchedulerConfig;

/**
 * A simulated cluster: the scheduler's settings plus instance counts, cache capacity and chunking.
 *
 * @param cacheBlocks  prefix-cache capacity of each prefill instance, in blocks (0: unbounded)
 * @param chunkTokens  prefill chunk size (each chunk pays the fixed prefill cost once)
 * @param noise        spread of the true times around the cost profile: each prefill and each decode
 *                     step takes the profile's time times a log-normal factor of mean 1 and this sigma
 * @param estimateFactor the scheduler's starting estimates are the profile's times times this (1: the
 *                     profile; the scheduler then learns the true times online, as the live one does)
 * @param hopSeconds   the request path's own time between a prefill's end and its first token reaching
 *                     the client (the live conductor's scheduling, reservation and relay: its estimator
 *                     {@code ttft_overhead_seconds}); added to every TTFT and known to the scheduler's
 *                     prediction, as the live conductor learns it
 */
public record SimulationConfig(
        SchedulerConfig scheduler,
        int prefill,
        int decode,
        int cacheBlocks,
        int chunkTokens,
        double noise,
        double estimateFactor,
        double hopSeconds) {
    /** No noise, estimates starting from the profile (times a test can compute by hand; simulate adds noise). */
    public SimulationConfig(SchedulerConfig scheduler, int prefill, int decode, int cacheBlocks, int chunkTokens) {
        this(scheduler, prefill, decode, cacheBlocks, chunkTokens, 0, 1.0, 0);
    }

    /** As above with noise and a starting estimate off by {@code estimateFactor}; no request-path hop. */
    public SimulationConfig(
            SchedulerConfig scheduler,
            int prefill,
            int decode,
            int cacheBlocks,
            int chunkTokens,
            double noise,
            double estimateFactor) {
        this(scheduler, prefill, decode, cacheBlocks, chunkTokens, noise, estimateFactor, 0);
    }

    public SimulationConfig {
        if (!(noise >= 0 && noise <= 2))
            throw new IllegalArgumentException("--noise " + noise + ": expected a sigma in 0..2 (0.1: 10%)");
        if (!(estimateFactor > 0 && estimateFactor <= 100))
            throw new IllegalArgumentException(
                    "--estimate-factor " + estimateFactor + ": expected a factor in (0, 100]");
        if (prefill < 1 || prefill > ClusterScheduler.MAX_PREFILL)
            throw new IllegalArgumentException(
                    "--prefill " + prefill + ": expected 1.." + ClusterScheduler.MAX_PREFILL + " instances");
        if (decode < 1) throw new IllegalArgumentException("--decode " + decode + ": expected at least 1 instance");
        if (cacheBlocks < 0)
            throw new IllegalArgumentException("--cache-blocks " + cacheBlocks + ": expected >= 0 (0: unbounded)");
        if (!(hopSeconds >= 0 && hopSeconds <= 10))
            throw new IllegalArgumentException("--hop " + hopSeconds + " s: expected 0..10 s (e.g. 5ms)");
        if (chunkTokens < 1) throw new IllegalArgumentException("chunk tokens must be >= 1, got " + chunkTokens);
    }
}
