package dev.mooncakej.decode;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code mooncakej.decode.*} keys only a decode worker takes: the batch, how long a reservation waits
 * for its KV, the fence deadline of a dropped reservation's writer, the drain budget (how long a
 * worker that leaves may take to finish or hand off its streams) and the write-behind share (of its
 * pool DRAM, for the blocks of running sequences). The keys both workers take
 * (model, KV slab, transfer, engine, conductor) are {@link dev.mooncakej.worker.WorkerKeys}, bound
 * under the same prefix. Validated once at start-up; a bad value fails start-up naming the key.
 */
@ConfigurationProperties("mooncakej.decode")
public record DecodeProperties(
        Integer maxBatch,
        Long kvWaitMillis,
        Long fenceDeadlineMillis,
        Integer drainBudgetSeconds,
        Double writeBehindShare) {
    public static final String PREFIX = "mooncakej.decode";

    public DecodeProperties {
        maxBatch = maxBatch == null ? 32 : maxBatch;
        kvWaitMillis = kvWaitMillis == null ? 30_000L : kvWaitMillis;
        fenceDeadlineMillis = fenceDeadlineMillis == null ? 30_000L : fenceDeadlineMillis;
        drainBudgetSeconds = drainBudgetSeconds == null ? 30 : drainBudgetSeconds;
        writeBehindShare = writeBehindShare == null ? 0.25 : writeBehindShare;
        if (!(writeBehindShare >= 0 && writeBehindShare <= 1))
            throw new IllegalArgumentException("mooncakej.decode.write-behind-share=" + writeBehindShare
                    + ": expected 0..1 (the share of this worker's pool DRAM that running sequences' blocks may"
                    + " take; 0: no write-behind)");
        if (drainBudgetSeconds < 1 || drainBudgetSeconds > 3600)
            throw new IllegalArgumentException("mooncakej.decode.drain-budget-seconds=" + drainBudgetSeconds
                    + ": expected 1..3600 (keep the pod's terminationGracePeriodSeconds above it)");
        if (maxBatch < 1 || maxBatch > 1024)
            throw new IllegalArgumentException("mooncakej.decode.max-batch=" + maxBatch + ": expected 1..1024");
        if (kvWaitMillis < 1)
            throw new IllegalArgumentException(
                    "mooncakej.decode.kv-wait-millis=" + kvWaitMillis + ": expected a positive number of milliseconds");
        if (fenceDeadlineMillis < 100)
            throw new IllegalArgumentException("mooncakej.decode.fence-deadline-millis=" + fenceDeadlineMillis
                    + ": expected at least 100 (how long a fenced reservation's tcp writer may take to confirm it"
                    + " stopped before it is cut off)");
    }
}
