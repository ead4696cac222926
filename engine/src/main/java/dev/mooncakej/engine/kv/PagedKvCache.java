package dev.mooncakej.engine.kv;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.LongFunction;

/**
 * The engine's KV cache: one off-heap slab of fixed-size blocks ({@link KvCacheLayout}) addressed by
 * int block ids, with a primitive free list and a reference count per block so requests can share
 * prefix blocks. Allocation returns {@link #NO_BLOCK} when the slab is full (no exception on the hot
 * path). Thread-safe: allocation and reference counting synchronize on this; reading and writing a
 * block's bytes is the owner's business.
 */
public final class PagedKvCache implements AutoCloseable {
    public static final int NO_BLOCK = -1;

    private final KvCacheLayout layout;
    private final int capacity;
    private final Arena arena;
    private final MemorySegment slab;
    private final int[] refCounts;
    private final int[] freeStack;
    private int freeTop;
    private boolean closed;

    public PagedKvCache(KvCacheLayout layout, int blocks) {
        this(layout, blocks, null);
    }

    /**
     * @param memory where the slab comes from (e.g. memory registered with a transfer engine, so peers
     *               can write KV straight into it); null: a private off-heap allocation freed on close
     */
    public PagedKvCache(KvCacheLayout layout, int blocks, LongFunction<MemorySegment> memory) {
        if (blocks < 1) throw new IllegalArgumentException("kv cache needs at least 1 block, got " + blocks);
        this.layout = layout;
        this.capacity = blocks;
        this.arena = memory == null ? Arena.ofShared() : null;
        long bytes = layout.blockBytes() * blocks;
        this.slab = memory == null ? arena.allocate(bytes, 64) : memory.apply(bytes);
        if (slab.byteSize() < bytes)
            throw new IllegalArgumentException("kv cache memory of " + slab.byteSize() + " bytes: expected " + bytes);
        this.refCounts = new int[blocks];
        this.freeStack = new int[blocks];
        for (int i = 0; i < blocks; i++) freeStack[i] = blocks - 1 - i; // hand out low ids first
        this.freeTop = blocks;
    }

    public KvCacheLayout layout() {
        return layout;
    }

    public int capacity() {
        return capacity;
    }

    public MemorySegment slab() {
        return slab;
    }

    /** A fresh block with reference count 1, or {@link #NO_BLOCK} when none is free. */
    public synchronized int allocate() {
        if (closed || freeTop == 0) return NO_BLOCK;
        int id = freeStack[--freeTop];
        refCounts[id] = 1;
        return id;
    }

    /** Adds a reference to a live block (a second request sharing it). */
    public synchronized void retain(int id) {
        check(id);
        refCounts[id]++;
    }

    /** Drops a reference; the block returns to the free list when none is left. Returns the new count. */
    public synchronized int release(int id) {
        check(id);
        int c = --refCounts[id];
        if (c == 0) freeStack[freeTop++] = id;
        return c;
    }

    public synchronized int refCount(int id) {
        if (id < 0 || id >= capacity)
            throw new IllegalArgumentException("block id " + id + " out of range [0, " + capacity + ")");
        return refCounts[id];
    }

    public synchronized int freeBlocks() {
        return freeTop;
    }

    public synchronized int usedBlocks() {
        return capacity - freeTop;
    }

    /** The whole block (all layers): one contiguous range of the slab. */
    public MemorySegment block(int id) {
        checkRange(id);
        return slab.asSlice(id * layout.blockBytes(), layout.blockBytes());
    }

    /** One layer of one block: one contiguous range of the slab, what a layer-wise transfer moves. */
    public MemorySegment layer(int id, int layer) {
        checkRange(id);
        if (layer < 0 || layer >= layout.layers())
            throw new IllegalArgumentException("layer " + layer + " out of range [0, " + layout.layers() + ")");
        return slab.asSlice(layerOffset(id, layer), layout.layerBytes());
    }

    /** Byte offset of a block's layer inside the slab. */
    public long layerOffset(int id, int layer) {
        return id * layout.blockBytes() + layer * layout.layerBytes();
    }

    /** Copies a block's layer out to raw memory ({@code dst} must hold {@code layerBytes}). */
    public void exportLayer(int id, int layer, MemorySegment dst) {
        MemorySegment.copy(layer(id, layer), 0, dst, 0, layout.layerBytes());
    }

    /** Copies raw memory into a block's layer. */
    public void importLayer(int id, int layer, MemorySegment src) {
        MemorySegment.copy(src, 0, layer(id, layer), 0, layout.layerBytes());
    }

    /** Copies a whole block (all layers) out to raw memory. */
    public void exportBlock(int id, MemorySegment dst) {
        MemorySegment.copy(block(id), 0, dst, 0, layout.blockBytes());
    }

    /** Copies raw memory into a whole block (all layers). */
    public void importBlock(int id, MemorySegment src) {
        MemorySegment.copy(src, 0, block(id), 0, layout.blockBytes());
    }

    private void check(int id) {
        if (id < 0 || id >= capacity)
            throw new IllegalArgumentException("block id " + id + " out of range [0, " + capacity + ")");
        if (refCounts[id] <= 0)
            throw new IllegalStateException(
                    "block " + id + " is not allocated (reference count " + refCounts[id] + ")");
    }

    private void checkRange(int id) {
        if (id < 0 || id >= capacity)
            throw new IllegalArgumentException("block id " + id + " out of range [0, " + capacity + ")");
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (arena != null) arena.close(); // external memory belongs to whoever provided it
        }
    }
}
