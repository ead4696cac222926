package dev.mooncakej.prefill;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.kv.KvCacheLayout;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.kvstore.client.SsdTier;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prefill worker's prefix cache over a real KV slab and a real SSD tier file: pinned blocks
 * survive eviction, evicted blocks go to the SSD tier and come back byte for byte (on a prefix
 * lookup, or when another worker asks for a promotion), and the events the store master hears.
 */
class PrefixBlockPoolTest {
    @TempDir
    Path dir;

    private static void fill(PagedKvCache c, int id, int seed) {
        var b = c.block(id);
        for (long i = 0; i < b.byteSize(); i++) b.set(ValueLayout.JAVA_BYTE, i, (byte) (seed + i));
    }

    private static boolean holds(PagedKvCache c, int id, int seed) {
        var b = c.block(id);
        for (long i = 0; i < b.byteSize(); i++) if (b.get(ValueLayout.JAVA_BYTE, i) != (byte) (seed + i)) return false;
        return true;
    }

    /** Caches blocks for keys 1..n as a prefill would (allocated, filled, cached, the sequence's reference gone). */
    private static void cacheBlocks(PagedKvCache c, PrefixBlockPool pool, int n) {
        for (int k = 1; k <= n; k++) {
            int id = c.allocate();
            fill(c, id, k);
            pool.put(k, id);
            c.release(id);
        }
    }

    @Test
    void evictedBlocksGoToTheSsdTierAndComeBackOnAPrefixLookup() {
        KvCacheLayout layout = new KvCacheLayout(2, 1, 8, 4);
        try (PagedKvCache cache = new PagedKvCache(layout, 4);
                SsdTier ssd = new SsdTier(
                        dir,
                        "prefill-t-" + ProcessHandle.current().pid(),
                        64 * layout.blockBytes(),
                        layout.blockBytes())) {
            PrefixBlockPool pool = new PrefixBlockPool(cache, ssd);
            pool.recordEvents();
            cacheBlocks(cache, pool, 4);
            int id1 = pool.longestPrefix(new long[] {1}, 1)[0];
            assertThat(pool.pin(9, new long[] {1}, new long[] {id1 * 1000L}, id -> id * 1000L, Long.MAX_VALUE))
                    .as("key 1 pinned by a reader")
                    .isEqualTo(1);
            assertThat(pool.evict(4)).as("all but the pinned block").isEqualTo(3);
            assertThat(ssd.size()).isEqualTo(3);
            assertThat(pool.holds(2)).as("on the SSD tier").isTrue();
            var ev = pool.drainEvents();
            assertThat(ev.evicted()).containsExactlyInAnyOrder(2, 3, 4);
            pool.unpin(9);
            // a prompt over keys 1..3: key 1 from DRAM, 2 and 3 read back from the SSD tier
            int[] ids = pool.longestPrefix(new long[] {1, 2, 3}, 3);
            assertThat(ids).hasSize(3);
            assertThat(pool.lastPromoted()).isEqualTo(2);
            assertThat(holds(cache, ids[1], 2)).isTrue();
            assertThat(holds(cache, ids[2], 3)).isTrue();
            assertThat(pool.drainEvents().stored()).containsExactly(2, 3);
            // another worker asked: key 4 back into DRAM, only at the SSD offset the master gave
            assertThat(pool.promote(new long[] {4}, new long[] {ssd.offsetOf(4) + 1}))
                    .isZero();
            pool.evict(1); // room for it
            assertThat(pool.promote(new long[] {4}, new long[] {ssd.offsetOf(4)}))
                    .isEqualTo(1);
            int[] four = pool.longestPrefix(new long[] {4}, 1);
            assertThat(holds(cache, four[0], 4)).isTrue();
        }
    }

    @Test
    void withoutAnSsdTierEvictedBlocksAreDropped() {
        KvCacheLayout layout = new KvCacheLayout(1, 1, 4, 4);
        try (PagedKvCache cache = new PagedKvCache(layout, 2)) {
            PrefixBlockPool pool = new PrefixBlockPool(cache);
            cacheBlocks(cache, pool, 2);
            assertThat(pool.evict(2)).isEqualTo(2);
            assertThat(pool.holds(1)).isFalse();
            assertThat(pool.longestPrefix(new long[] {1}, 1)).isEmpty();
            assertThat(pool.promote(new long[] {1}, new long[] {0})).isZero();
        }
    }
}
