package dev.mooncakej.kvstore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvstore.StoreMaster.PutStatus;
import dev.mooncakej.kvstore.StoreMaster.RemoveStatus;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Every rule of the store master, on a clock the test moves. */
class StoreMasterTest {
    private static final long BLOCK = 1000;
    private final AtomicLong now = new AtomicLong(1_000_000);

    private StoreMaster master(StoreConfig cfg) {
        return new StoreMaster(cfg, now::get);
    }

    private static StoreMaster put(StoreMaster m, long key, ReplicateConfig cfg) {
        assertThat(m.putStart(key, BLOCK, cfg).status()).isEqualTo(PutStatus.STARTED);
        assertThat(m.putEnd(key)).isTrue();
        return m;
    }

    @Test
    void putGetExistsRemoveAndTheirBatchForms() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountSegment("w1", "seg-a", Tier.DRAM, 4096, 10 * BLOCK);
        var start = m.putStart(7, BLOCK, ReplicateConfig.DEFAULT);
        assertThat(start.status()).isEqualTo(PutStatus.STARTED);
        assertThat(start.replicas()).singleElement().satisfies(r -> {
            assertThat(r.segment()).isEqualTo("seg-a");
            assertThat(r.offset()).isBetween(4096L, 4096 + 9 * BLOCK);
            assertThat(r.state()).isEqualTo(ReplicaState.PROCESSING);
        });
        assertThat(m.get(7)).as("not readable before put end").isNull();
        assertThat(m.exists(7)).isFalse();
        assertThat(m.putStart(7, BLOCK, ReplicateConfig.DEFAULT).status()).isEqualTo(PutStatus.EXISTS);
        assertThat(m.putEnd(7)).isTrue();
        assertThat(m.putEnd(7)).isFalse();
        var got = m.get(7);
        assertThat(got.replicas()).singleElement().extracting(Replica::state).isEqualTo(ReplicaState.COMPLETE);
        assertThat(got.leaseUntilMillis()).isEqualTo(now.get() + 10_000);
        assertThat(m.exists(7)).isTrue();
        now.addAndGet(10_001);
        assertThat(m.remove(7, false)).isEqualTo(RemoveStatus.REMOVED);
        assertThat(m.remove(7, false)).isEqualTo(RemoveStatus.NOT_FOUND);
        assertThat(m.used(Tier.DRAM)).isZero();

        long[] keys = {1, 2, 3};
        assertThat(m.putStart(keys, BLOCK, ReplicateConfig.DEFAULT))
                .extracting(StoreMaster.PutStart::status)
                .containsOnly(PutStatus.STARTED);
        assertThat(m.putEnd(new long[] {1, 2})).containsExactly(true, true);
        assertThat(m.putRevoke(new long[] {3, 1})).containsExactly(true, false);
        assertThat(m.exists(new long[] {1, 2, 3})).containsExactly(true, true, false);
        assertThat(m.get(new long[] {2, 3}))
                .satisfiesExactly(
                        g -> assertThat(g).isNotNull(), g -> assertThat(g).isNull());
        assertThat(m.longestPrefix(new long[] {1, 2, 3, 1})).isEqualTo(2);
        now.addAndGet(10_001);
        assertThat(m.remove(new long[] {1, 2, 9}, false))
                .containsExactly(RemoveStatus.REMOVED, RemoveStatus.REMOVED, RemoveStatus.NOT_FOUND);
        assertThat(m.size()).isZero();
        assertThat(m.used(Tier.DRAM)).isZero();
        assertThatThrownBy(() -> m.putStart(5, 0, ReplicateConfig.DEFAULT)).hasMessageContaining("0 bytes");
    }

    @Test
    void aReadLeaseBlocksRemovalAndEvictionUntilItExpires() {
        StoreMaster m = master(StoreConfig.defaults().withWatermark(0.5, 0.5));
        m.mountSegment("w", "s", Tier.DRAM, 0, 4 * BLOCK);
        for (long k = 1; k <= 3; k++) put(m, k, ReplicateConfig.DEFAULT);
        now.addAndGet(1);
        m.get(1); // leased for 10 s
        assertThat(m.remove(1, false)).isEqualTo(RemoveStatus.BUSY);
        assertThat(m.busyRemovals()).isEqualTo(1);
        m.tick(); // 75% used > 50%: evict, but not the leased block
        assertThat(m.exists(2) || m.exists(3)).as("unleased blocks went first").isFalse();
        assertThat(m.get(1)).isNotNull();
        now.addAndGet(10_001);
        assertThat(m.remove(1, false)).isEqualTo(RemoveStatus.REMOVED);
        put(m, 4, ReplicateConfig.DEFAULT);
        m.get(4);
        assertThat(m.remove(4, true)).as("force").isEqualTo(RemoveStatus.REMOVED);
    }

    @Test
    void evictionRunsFromTheHighWatermarkLeastRecentlyUsedFirstAndNeverTakesPinnedOrUnfinishedBlocks() {
        StoreMaster m = master(StoreConfig.defaults().withWatermark(0.9, 0.2));
        m.mountSegment("w", "s", Tier.DRAM, 0, 10 * BLOCK);
        put(m, 1, ReplicateConfig.DEFAULT.pinnedHard());
        now.addAndGet(1);
        put(m, 2, ReplicateConfig.DEFAULT.pinnedSoft());
        for (long k = 3; k <= 9; k++) {
            now.addAndGet(1);
            put(m, k, ReplicateConfig.DEFAULT);
        }
        now.addAndGet(1);
        assertThat(m.putStart(10, BLOCK, ReplicateConfig.DEFAULT).status()).isEqualTo(PutStatus.STARTED); // unfinished
        now.addAndGet(1);
        m.get(9); // recently used ... and leased
        now.addAndGet(1);
        assertThat(m.tick())
                .as("100% used > 90%: at least max(0.2, 1.0 - 0.9 + 0.2) = 30% freed")
                .isEqualTo(3);
        assertThat(m.exists(new long[] {3, 4, 5}))
                .as("the three least recently used")
                .containsExactly(false, false, false);
        assertThat(m.exists(new long[] {1, 2, 6, 7, 8, 9})).containsOnly(true);
        assertThat(m.used(Tier.DRAM)).isEqualTo(7 * BLOCK);
        assertThat(m.putEnd(10)).isTrue();

        // only pinned, leased and unfinished blocks left besides one: the soft-pinned one goes in pass 2
        StoreMaster p = master(StoreConfig.defaults().withWatermark(0.5, 0.4));
        p.mountSegment("w", "s", Tier.DRAM, 0, 4 * BLOCK);
        put(p, 1, ReplicateConfig.DEFAULT.pinnedHard());
        put(p, 2, ReplicateConfig.DEFAULT.pinnedSoft());
        put(p, 3, ReplicateConfig.DEFAULT);
        p.get(3);
        p.putStart(4, BLOCK, ReplicateConfig.DEFAULT);
        now.addAndGet(1);
        assertThat(p.tick()).isEqualTo(1);
        assertThat(p.exists(new long[] {1, 2, 3})).containsExactly(true, false, true);
        assertThat(p.putEnd(4)).isTrue();
        // a soft pin lapses after its TTL: the block is then an ordinary one
        StoreMaster q = master(StoreConfig.defaults().withWatermark(0.5, 0.2));
        q.mountSegment("w", "s", Tier.DRAM, 0, 2 * BLOCK);
        put(q, 1, ReplicateConfig.DEFAULT.pinnedSoft());
        now.addAndGet(1);
        put(q, 2, ReplicateConfig.DEFAULT);
        now.addAndGet(30 * 60_000 + 1);
        q.get(2);
        assertThat(q.tick()).isEqualTo(1);
        assertThat(q.exists(new long[] {1, 2})).containsExactly(false, true);
    }

    @Test
    void aPutThatFindsNoRoomEvictsAndOneThatCannotGetsNoSpace() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountSegment("w", "s", Tier.DRAM, 0, 2 * BLOCK);
        put(m, 1, ReplicateConfig.DEFAULT);
        now.addAndGet(1);
        put(m, 2, ReplicateConfig.DEFAULT);
        now.addAndGet(1);
        assertThat(m.putStart(3, BLOCK, ReplicateConfig.DEFAULT).status())
                .as("block 1 evicted to make room")
                .isEqualTo(PutStatus.STARTED);
        assertThat(m.exists(1)).isFalse();
        assertThat(m.evictions()).isEqualTo(1);
        assertThat(m.putStart(4, BLOCK, ReplicateConfig.DEFAULT).status())
                .as("block 2 evicted in turn")
                .isEqualTo(PutStatus.STARTED);
        assertThat(m.putStart(5, BLOCK, ReplicateConfig.DEFAULT).status())
                .as("3 and 4 are unfinished")
                .isEqualTo(PutStatus.NO_SPACE);
        assertThat(m.putStart(6, BLOCK, ReplicateConfig.DEFAULT.inTier(Tier.SSD))
                        .status())
                .as("no SSD segment")
                .isEqualTo(PutStatus.NO_SPACE);
    }

    @Test
    void aPutThatNeverEndsIsReclaimedAfterTheTimeout() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountSegment("w", "s", Tier.DRAM, 0, 2 * BLOCK);
        m.putStart(1, BLOCK, ReplicateConfig.DEFAULT);
        now.addAndGet(30_000);
        m.tick();
        assertThat(m.used(Tier.DRAM)).isEqualTo(BLOCK);
        now.addAndGet(1);
        assertThat(m.tick()).isEqualTo(1);
        assertThat(m.used(Tier.DRAM)).isZero();
        assertThat(m.reclaimedPuts()).isEqualTo(1);
        assertThat(m.putEnd(1)).as("its writer comes too late").isFalse();
    }

    @Test
    void allocationTriesPreferredSegmentsFirstKeepsReplicasApartAndFreeRatioFirstPicksTheEmptiest() {
        StoreMaster m = master(StoreConfig.defaults());
        for (String s : List.of("a", "b", "c")) m.mountSegment("w-" + s, s, Tier.DRAM, 0, 10 * BLOCK);
        for (long k = 0; k < 5; k++) {
            var r = m.putStart(k, BLOCK, ReplicateConfig.preferring("b"));
            assertThat(r.replicas())
                    .singleElement()
                    .extracting(Replica::segment)
                    .isEqualTo("b");
        }
        var three = m.putStart(100, BLOCK, new ReplicateConfig(3, Tier.DRAM, false, false, List.of()));
        assertThat(three.replicas()).extracting(Replica::segment).containsExactlyInAnyOrder("a", "b", "c");
        var more = m.putStart(101, BLOCK, new ReplicateConfig(5, Tier.DRAM, false, false, List.of()));
        assertThat(more.replicas()).as("best effort: one per segment").hasSize(3);

        StoreMaster f = master(StoreConfig.defaults().withAllocation(AllocationStrategy.FREE_RATIO_FIRST));
        f.mountSegment("w1", "full", Tier.DRAM, 0, 10 * BLOCK);
        f.mountSegment("w2", "empty", Tier.DRAM, 0, 10 * BLOCK);
        for (long k = 0; k < 6; k++) f.putStart(k, BLOCK, ReplicateConfig.preferring("full"));
        for (long k = 10; k < 14; k++) {
            assertThat(f.putStart(k, BLOCK, ReplicateConfig.DEFAULT).replicas())
                    .singleElement()
                    .extracting(Replica::segment)
                    .isEqualTo("empty");
        }
        assertThatThrownBy(() -> AllocationStrategy.parse("round-robin"))
                .hasMessageContaining("mooncakej.store.allocation=round-robin");
    }

    @Test
    void aClientThatStopsHeartbeatingLosesItsSegmentsAndReplicasWithinTheLivenessTtl() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountSegment("alive", "s1", Tier.DRAM, 0, 10 * BLOCK);
        m.mountSegment("dead", "s2", Tier.DRAM, 0, 10 * BLOCK);
        m.mountSegment("dead", "s3", Tier.SSD, 0, 10 * BLOCK);
        put(m, 1, ReplicateConfig.preferring("s1"));
        put(m, 2, ReplicateConfig.preferring("s2"));
        put(m, 3, new ReplicateConfig(2, Tier.DRAM, false, false, List.of("s1", "s2")));
        put(m, 4, ReplicateConfig.DEFAULT.inTier(Tier.SSD));
        now.addAndGet(6_000);
        m.heartbeat("alive");
        assertThat(m.expireClients()).isEmpty();
        now.addAndGet(4_001);
        assertThat(m.expireClients()).as("silent for 10 s").containsExactly("dead");
        assertThat(m.segmentNames()).containsExactly("s1");
        assertThat(m.exists(new long[] {1, 2, 3, 4})).containsExactly(true, false, true, false);
        assertThat(m.get(3).replicas()).extracting(Replica::segment).containsExactly("s1");
        assertThat(m.capacity(Tier.SSD)).isZero();
    }

    @Test
    void everyKeyIsValidatedWithItsName() {
        assertThatThrownBy(() -> new StoreConfig(0, 1, 0.9, 0.05, 1, 1, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.lease-ttl-millis=0");
        assertThatThrownBy(() -> new StoreConfig(1, 1, 1.5, 0.05, 1, 1, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.high-watermark=1.5");
        assertThatThrownBy(() -> new StoreConfig(1, 1, 0.9, 0, 1, 1, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.eviction-ratio=0");
        assertThatThrownBy(() -> new StoreConfig(1, 1, 0.9, 0.05, 0, 1, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.put-timeout-millis=0");
        assertThatThrownBy(() -> new StoreConfig(1, 1, 0.9, 0.05, 1, 0, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.client-live-ttl-millis=0");
        assertThatThrownBy(() -> new StoreConfig(1, 0, 0.9, 0.05, 1, 1, AllocationStrategy.RANDOM, 1))
                .hasMessageContaining("mooncakej.store.soft-pin-ttl-millis=0");
    }

    @Test
    void replicasAWorkerHoldsInItsOwnMemoryAreReadableNeverAllocatedOverAndNeverEvictedByTheMaster() {
        StoreMaster m = master(StoreConfig.defaults().withWatermark(0.5, 0.5));
        m.mountHeldSegment("prefill-a", "slab-a", Tier.DRAM, 0, 100 * BLOCK);
        m.mountSegment("prefill-b", "pool-b", Tier.DRAM, 0, 2 * BLOCK);
        m.held("prefill-a", "slab-a", 42, 5 * BLOCK, BLOCK, Tier.DRAM);
        assertThat(m.get(42).replicas()).singleElement().satisfies(r -> {
            assertThat(r.segment()).isEqualTo("slab-a");
            assertThat(r.offset()).isEqualTo(5 * BLOCK);
        });
        assertThat(m.capacity(Tier.DRAM)).as("only the allocatable pool counts").isEqualTo(2 * BLOCK);
        var put = m.putStart(43, BLOCK, ReplicateConfig.preferring("slab-a"));
        assertThat(put.replicas())
                .as("the master never allocates in a worker-managed segment")
                .singleElement()
                .extracting(Replica::segment)
                .isEqualTo("pool-b");
        m.putEnd(43);
        put(m, 44, ReplicateConfig.DEFAULT);
        now.addAndGet(20_000);
        m.tick();
        assertThat(m.exists(42)).as("held replicas are the worker's to evict").isTrue();
        m.released("slab-a", 42);
        assertThat(m.exists(42)).isFalse();
        assertThatThrownBy(() -> m.held("prefill-b", "slab-a", 1, 0, BLOCK, Tier.DRAM))
                .hasMessageContaining("not mounted by prefill-b");
        assertThatThrownBy(() -> m.held("prefill-a", "slab-a", 1, 100 * BLOCK, BLOCK, Tier.DRAM))
                .hasMessageContaining("outside segment");
        m.held("prefill-a", "slab-a", 50, 0, BLOCK, Tier.DRAM);
        assertThat(m.unmountSegment("slab-a")).isEqualTo(1);
        assertThat(m.exists(50)).isFalse();
    }

    @Test
    void theSchedulersViewOfThePoolFollowsPutsEvictionsAndRemovals() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountSegment("w1", "seg-a:pool", Tier.DRAM, 0, 10 * BLOCK);
        m.putStart(1, BLOCK, ReplicateConfig.DEFAULT);
        m.putStart(2, BLOCK, ReplicateConfig.DEFAULT);
        assertThat(m.drainPoolChanges().added()).as("not before put end").isEmpty();
        m.putEnd(1);
        m.putRevoke(2);
        var c = m.drainPoolChanges();
        assertThat(c.added()).containsExactly(1);
        assertThat(c.removed()).as("a revoked put was never readable").isEmpty();
        now.addAndGet(10_001); // past the lease of nobody: remove it
        assertThat(m.remove(1, false)).isEqualTo(RemoveStatus.REMOVED);
        assertThat(m.drainPoolChanges().removed()).containsExactly(1);
        put(m, 3, ReplicateConfig.DEFAULT);
        m.unmountSegment("seg-a:pool");
        assertThat(m.drainPoolChanges().removed()).as("its segment went").containsExactly(3);
    }

    @Test
    void aWorkerHoldsABlockWhileAnyOfItsTiersDoesAndItsSegmentsShowTheirUse() {
        StoreMaster m = master(StoreConfig.defaults());
        m.mountHeldSegment("w1", "p1", Tier.DRAM, 0, 10 * BLOCK);
        m.mountHeldSegment("w1", "p1:ssd", Tier.SSD, 0, 100 * BLOCK);
        m.mountHeldSegment("w2", "p2", Tier.DRAM, 0, 10 * BLOCK);
        m.held("w1", "p1", 5, BLOCK, BLOCK, Tier.DRAM);
        m.held("w1", "p1:ssd", 5, 0, BLOCK, Tier.SSD); // demoted: both tiers for a moment
        m.released("p1", 5);
        assertThat(m.heldBy("w1", 5)).as("still on its SSD").isTrue();
        assertThat(m.heldBy("w2", 5)).isFalse();
        assertThat(m.get(5).replicas())
                .singleElement()
                .extracting(Replica::tier)
                .isEqualTo(Tier.SSD);
        assertThat(m.segmentUse())
                .filteredOn(u -> u.segment().equals("p1:ssd"))
                .singleElement()
                .satisfies(u -> {
                    assertThat(u.used()).isEqualTo(BLOCK);
                    assertThat(u.capacity()).isEqualTo(100 * BLOCK);
                    assertThat(u.heldOnly()).isTrue();
                });
        m.released("p1:ssd", 5);
        assertThat(m.heldBy("w1", 5)).isFalse();
        assertThat(m.get(5)).isNull();
        assertThat(m.segmentUse()).allSatisfy(u -> assertThat(u.used()).isZero());
    }
}
