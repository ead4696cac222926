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
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A decode worker's finished sequences into the KV pool (the next turn of a conversation reuses
 * them): out of {@link DecodeService}; where a running sequence's blocks will be written behind too.
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
    }

    /** Blocks of finished sequences this worker put into the KV pool. */
    /** This worker's pool segment (null: none yet). */
    PoolSegment segment() {
        return pool;
    }

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
                putBlocks(st, put, ids);
            } catch (RuntimeException e) {
                LOG.info("putting reservation {}'s blocks into the KV pool failed: {}", r.id, e.getMessage());
            } finally {
                for (int id : ids) cache.release(id);
            }
        });
    }

    private void putBlocks(StoreClient st, long[] keys, int[] ids) {
        StorePutStarted started = st.putStart(storeClient, keys, blockBytes, pool.name());
        if (started == null) return;
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
    }
}
