package dev.mooncakej.engine.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PagedKvCacheTest {
    private final KvCacheLayout layout = new KvCacheLayout(3, 2, 8, 16);

    @Test
    void layoutPutsEachLayerOfEachBlockInOneContiguousRange() {
        assertThat(layout.layerBytes()).isEqualTo(2L * 16 * 2 * 8 * 4);
        assertThat(layout.blockBytes()).isEqualTo(3 * layout.layerBytes());
        assertThat(layout.keyOffset(1)).isEqualTo(2 * 8 * 4);
        assertThat(layout.valueOffset(0)).isEqualTo(16L * 2 * 8 * 4);
        try (PagedKvCache c = new PagedKvCache(layout, 4)) {
            assertThat(c.layerOffset(2, 1)).isEqualTo(2 * layout.blockBytes() + layout.layerBytes());
            assertThat(c.layer(2, 1).address()).isEqualTo(c.slab().address() + c.layerOffset(2, 1));
            assertThat(c.layer(3, 2).byteSize()).isEqualTo(layout.layerBytes());
            assertThat(c.block(3).address() + c.block(3).byteSize())
                    .isEqualTo(c.slab().address() + c.slab().byteSize());
        }
    }

    @Test
    void allocatesUntilFullThenReturnsNoBlockAndRecyclesReleasedBlocks() {
        try (PagedKvCache c = new PagedKvCache(layout, 4)) {
            Set<Integer> ids = new HashSet<>();
            for (int i = 0; i < 4; i++) ids.add(c.allocate());
            assertThat(ids).containsExactlyInAnyOrder(0, 1, 2, 3);
            assertThat(c.allocate()).isEqualTo(PagedKvCache.NO_BLOCK);
            assertThat(c.usedBlocks()).isEqualTo(4);
            assertThat(c.release(2)).isZero();
            assertThat(c.allocate()).isEqualTo(2);
        }
    }

    @Test
    void sharedBlocksReturnToThePoolOnlyWhenTheLastReferenceGoes() {
        try (PagedKvCache c = new PagedKvCache(layout, 2)) {
            int id = c.allocate();
            c.retain(id);
            assertThat(c.release(id)).isEqualTo(1);
            assertThat(c.freeBlocks()).isEqualTo(1);
            assertThat(c.release(id)).isZero();
            assertThat(c.freeBlocks()).isEqualTo(2);
            assertThatThrownBy(() -> c.release(id))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("not allocated");
            assertThatThrownBy(() -> c.retain(7))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("out of range");
        }
    }

    @Test
    void exportAndImportMoveExactlyOneLayer() {
        try (PagedKvCache c = new PagedKvCache(layout, 2);
                Arena a = Arena.ofConfined()) {
            int src = c.allocate(), dst = c.allocate();
            var seg = c.layer(src, 1);
            for (long i = 0; i < seg.byteSize(); i++) seg.set(ValueLayout.JAVA_BYTE, i, (byte) i);
            var wire = a.allocate(layout.layerBytes());
            c.exportLayer(src, 1, wire);
            c.importLayer(dst, 1, wire);
            assertThat(c.layer(dst, 1).mismatch(seg)).isEqualTo(-1);
            assertThat(c.layer(dst, 0).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
            assertThat(c.layer(dst, 2).toArray(ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
        }
    }

    @Test
    void badLayoutValuesAreNamed() {
        assertThatThrownBy(() -> new KvCacheLayout(1, 1, 1, 0))
                .hasMessageContaining("kv block size")
                .hasMessageContaining("got 0");
        assertThatThrownBy(() -> new PagedKvCache(layout, 0)).hasMessageContaining("at least 1 block");
    }
}
