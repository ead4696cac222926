package dev.mooncakej.prefill;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Single flight for a prefill worker's blocks: which blocks the prefills running here are producing
 * (computing, or fetching from the pool), so a request that needs them waits for them instead of
 * computing them again. Out of {@link PrefillService}.
 */
final class BlockProduction {
    private static final Logger LOG = LoggerFactory.getLogger(BlockProduction.class);

    private final PrefixBlockPool pool;
    /** How long a request waits for blocks in production before it computes them itself. */
    private final Duration wait;

    BlockProduction(PrefixBlockPool pool, Duration wait) {
        this.pool = pool;
        this.wait = wait;
    }

    /** A new prefill's production (empty until {@link #localPrefix} registers its blocks). */
    Production begin() {
        return new Production();
    }

    /** The blocks one prefill here is producing (computing, or fetching from the pool), by key. */
    final class Production {
        final CompletableFuture<Void> done = new CompletableFuture<>();
        final List<Long> keys = new ArrayList<>();

        /** Its blocks are cached (or never will be): they leave the registry, and whoever waited goes on. */
        void end() {
            if (done.isDone()) return;
            synchronized (producing) {
                for (long k : keys) producing.remove(k, this);
            }
            done.complete(null);
        }
    }

    /** Blocks some prefill on this worker is producing now, by key. */
    private final Map<Long, Production> producing = new HashMap<>();

    /**
     * The local prefix of {@code keys} once the blocks other prefills here are producing are cached:
     * a request whose next blocks are being computed or fetched on this worker waits for them (up
     * to the KV timeout) instead of computing them again; then it registers the blocks it will
     * produce itself. Waits only on prefills registered before it, which never wait on it: no cycle.
     */
    int[] localPrefix(long[] keys, int limit, Production mine, long reservation) {
        long until = System.nanoTime() + wait.toNanos();
        int waited = 0;
        while (true) {
            int[] local = pool.longestPrefix(keys, limit);
            Production other = null;
            synchronized (producing) {
                for (int b = local.length; b < Math.min(keys.length, limit) && other == null; b++)
                    other = producing.get(keys[b]);
                if (other == null || System.nanoTime() >= until) {
                    for (int b = local.length; b < keys.length; b++) {
                        if (producing.putIfAbsent(keys[b], mine) == null) mine.keys.add(keys[b]);
                    }
                    if (waited > 0)
                        LOG.info(
                                "reservation {}: waited for {} prefill(s) here producing its prefix; {} blocks cached"
                                        + " now",
                                reservation,
                                waited,
                                local.length);
                    return local;
                }
            }
            waited++;
            try {
                other.done.get(Math.max(1, until - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException | ExecutionException e) {
                // the deadline passed: compute what is still missing
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for a prefix in production", e);
            }
        }
    }
}
