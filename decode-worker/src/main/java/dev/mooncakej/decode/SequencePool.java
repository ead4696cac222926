package dev.mooncakej.decode;

import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.SequenceKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePutStarted;
import dev.mooncakej.kvstore.client.PoolSegment;
import dev.mooncakej.kvstore.client.StoreClient;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode worker's sequences into the KV pool: a finished one's blocks (the next turn of a
 * conversation reuses them), and a running one's blocks as each fills ({@link #writeBehind}), in a
 * pool segment other than this worker's, so a stream that moves to another decode worker (this one
 * died, stalled or drains) finds its history there and only the last partial block is recomputed.
 * Out of {@link DecodeService}.
 */
final class SequencePool {
    private static final Logger LOG = LoggerFactory.getLogger(SequencePool.class);

    private final PagedKvCache cache;
    private final int blockTokens;
    private final long blockBytes;
    private final long kvTimeoutMillis;

    SequencePool(PagedKvCache cache, int blockTokens, long kvTimeoutMillis) {
        this.cache = cache;
        this.blockTokens = blockTokens;
        this.blockBytes = cache.layout().blockBytes();
        this.kvTimeoutMillis = kvTimeoutMillis;
    }

    private volatile StoreClient store;
    private volatile PoolSegment pool;
    private volatile String storeClient;
    private final AtomicLong pooledBlocks = new AtomicLong();

    /** Where finished sequences go: the store master, and this worker's pool segment (null: none). */
    void use(StoreClient store, PoolSegment pool, String client) {
        this.pool = pool;
        this.storeClient = client;
        this.store = store;
        if (pool != null && behindShare > 0 && behindWriter == null) {
            behindBound = (long) (behindShare * pool.capacity() / blockBytes);
            behindWriter = Thread.ofVirtual().name("write-behind").start(this::writeBehindLoop);
        }
    }

    // write-behind: a running sequence's blocks into the pool as they fill

    /** A running sequence's newly full blocks to put: their keys, their ids (retained until copied). */
    private record Behind(long reservation, long[] keys, int[] ids) {}

    private final LinkedBlockingQueue<Behind> behind = new LinkedBlockingQueue<>();
    private volatile double behindShare;
    private volatile long behindBound;
    private volatile Thread behindWriter;
    /** Blocks written behind for sequences still running: what the bound counts. */
    private final AtomicLong behindLive = new AtomicLong();
    /** Blocks written behind, skipped (over the bound, or the pool had no room), failed. */
    final AtomicLong behindWritten = new AtomicLong(),
            behindSkipped = new AtomicLong(),
            behindFailed = new AtomicLong();

    /**
     * Write-behind takes at most {@code share} of this worker's pool DRAM for the blocks of sequences
     * still running (0: off); set before {@link #use}.
     */
    void writeBehindShare(double share) {
        this.behindShare = share;
    }

    /**
     * Called by the decode agent after each step, for each sequence it decodes: the blocks that filled
     * since the last call (their KV is in the cache: the tokens are fed) are handed to the writer,
     * which puts them into the pool off the decode loop, batched. The prompt's blocks go first, so a
     * moved stream finds the whole chain from its first block whatever the prefill's cache kept; a
     * block over the bound is skipped (the finished sequence's put covers it later). Cheap on the
     * agent's thread: each new block's key is chained from the last one computed, and its id retained.
     */
    void writeBehind(Reservation r) {
        if (behindWriter == null || r.choice != 0 || r.task == null || r.task.keys() == null) return;
        SequenceKeys k = r.task.keys();
        int bt = blockTokens;
        int full = Math.min((r.promptTokens + r.fedCount) / bt, r.seq.blockCount());
        if (full <= r.behindUpTo) return;
        int from = r.behindUpTo, n = full - from;
        r.behindUpTo = full;
        if (behindLive.get() + n > behindBound) {
            behindSkipped.addAndGet(n);
            return;
        }
        behindLive.addAndGet(n);
        r.behindBlocks += n;
        long[] all = r.behindKeys == null ? k.promptKeys() : r.behindKeys;
        if (full > all.length) { // the tokens of the blocks not keyed yet: the prompt's tail, then those fed
            int tailLen = k.tailTokens().length, at = (all.length - k.promptKeys().length) * bt;
            int[] after = new int[(full - all.length) * bt];
            for (int i = 0; i < after.length; i++, at++)
                after[i] = at < tailLen ? k.tailTokens()[at] : r.fed[at - tailLen];
            all = new BlockKeys(k.seed(), bt).extend(all, after, after.length);
        }
        r.behindKeys = all;
        int[] ids = Arrays.copyOfRange(r.seq.blockTable(), from, full);
        for (int id : ids) cache.retain(id); // outlive the sequence until copied
        behind.add(new Behind(r.id, Arrays.copyOfRange(all, from, full), ids));
    }

    /** A sequence ended: its blocks written behind leave the bound (they are the pool's now). */
    void ended(Reservation r) {
        if (r.behindBlocks > 0) behindLive.addAndGet(-r.behindBlocks);
        r.behindBlocks = 0;
    }

    /** The writer: takes what is queued, puts it in one batch, releases the blocks; until interrupted. */
    private void writeBehindLoop() {
        List<Behind> batch = new ArrayList<>();
        while (!Thread.currentThread().isInterrupted()) {
            try {
                batch.add(behind.take());
            } catch (InterruptedException e) {
                return;
            }
            behind.drainTo(batch, 255);
            int n = 0;
            for (Behind b : batch) n += b.ids().length;
            long[] keys = new long[n];
            int[] ids = new int[n];
            int i = 0;
            for (Behind b : batch) {
                System.arraycopy(b.keys(), 0, keys, i, b.keys().length);
                System.arraycopy(b.ids(), 0, ids, i, b.ids().length);
                i += b.ids().length;
            }
            try {
                StoreClient st = store;
                int[] outcome = st == null ? new int[] {0, n} : putBlocks(st, keys, ids, true);
                behindWritten.addAndGet(outcome[0]);
                behindFailed.addAndGet(outcome[1]);
            } catch (RuntimeException e) {
                behindFailed.addAndGet(n);
                LOG.debug("writing {} blocks behind failed: {}", n, e.getMessage());
            } finally {
                for (int id : ids) cache.release(id);
                batch.clear();
            }
        }
    }

    /** Stops the writer (what is queued is released, not written). */
    void stopWriteBehind() {
        Thread t = behindWriter;
        if (t != null) t.interrupt();
        for (Behind b; (b = behind.poll()) != null; ) for (int id : b.ids()) cache.release(id);
    }

    /** The store master's client (null: no KV pool here). */
    StoreClient store() {
        return store;
    }

    /** This worker's pool segment (null: none yet). */
    PoolSegment segment() {
        return pool;
    }

    /** Blocks of finished sequences this worker put into the KV pool. */
    long pooledBlocks() {
        return pooledBlocks.get();
    }

    /**
     * A finished sequence's full blocks (prompt and generated text) go into the KV pool, keyed by
     * continuing the prompt's keys over the tokens fed since: retained here, then copied off the agent
     * thread into replicas the master allocates (this worker's own pool first) and ended, or revoked
     * when a copy fails; blocks the pool already holds are skipped.
     */
    void putBack(Reservation r) {
        StoreClient st = store;
        SequenceKeys k = r.task == null ? null : r.task.keys();
        if (st == null || pool == null || k == null) return;
        int bt = blockTokens;
        int[] after = new int[k.tailTokens().length + r.fedCount];
        System.arraycopy(k.tailTokens(), 0, after, 0, k.tailTokens().length);
        System.arraycopy(r.fed, 0, after, k.tailTokens().length, r.fedCount);
        long[] keys = new BlockKeys(k.seed(), bt).extend(k.promptKeys(), after, after.length);
        int full = Math.min(keys.length, Math.min(r.seq.length() / bt, r.seq.blockCount()));
        if (full == 0) return;
        int[] ids = Arrays.copyOf(r.seq.blockTable(), full);
        for (int id : ids) cache.retain(id); // outlive the reservation until copied
        long[] put = Arrays.copyOf(keys, full);
        Thread.ofVirtual().name("pool-put-" + r.id).start(() -> {
            try {
                putBlocks(st, put, ids, false);
            } catch (RuntimeException e) {
                LOG.info("putting reservation {}'s blocks into the KV pool failed: {}", r.id, e.getMessage());
            } finally {
                for (int id : ids) cache.release(id);
            }
        });
    }

    /**
     * Puts {@code keys} from blocks {@code ids}: started at the master (in this worker's pool segment
     * first, or, {@code elsewhere}, in any other), copied, ended or revoked. Returns the blocks
     * written and those that failed (the rest were there already, or found no room).
     */
    private int[] putBlocks(StoreClient st, long[] keys, int[] ids, boolean elsewhere) {
        StorePutStarted started = st.putStart(storeClient, keys, blockBytes, pool.name(), elsewhere);
        if (started == null) return new int[] {0, keys.length};
        List<Long> written = new ArrayList<>(), failed = new ArrayList<>();
        List<CompletableFuture<Boolean>> copies = new ArrayList<>();
        List<Long> copying = new ArrayList<>();
        for (int i = 0; i < keys.length; i++) {
            if (!"started".equals(started.status().get(i)) || started.replicas().get(i) == null) continue;
            copies.add(pool.write(cache.block(ids[i]), started.replicas().get(i)));
            copying.add(keys[i]);
        }
        for (int i = 0; i < copies.size(); i++) {
            boolean ok;
            try {
                ok = copies.get(i).get(kvTimeoutMillis, TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                ok = false;
            }
            (ok ? written : failed).add(copying.get(i));
        }
        if (!written.isEmpty())
            st.putEnd(written.stream().mapToLong(Long::longValue).toArray());
        if (!failed.isEmpty())
            st.putRevoke(failed.stream().mapToLong(Long::longValue).toArray());
        pooledBlocks.addAndGet(written.size());
        LOG.debug(
                "{} blocks into the KV pool ({} failed, {} already there)",
                written.size(),
                failed.size(),
                keys.length - copying.size());
        return new int[] {written.size(), failed.size()};
    }
}
