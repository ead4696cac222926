package dev.mooncakej.engine.spi;

import dev.mooncakej.engine.kv.PagedKvCache;
import java.util.Arrays;

/**
 * One request's view of the KV cache: its block table (int block ids, one per {@code blockTokens}
 * positions) and how many tokens have their K/V stored. Blocks are reference counted: a prefix
 * adopted from the cache or another request is shared, and {@link #release()} drops this sequence's
 * references, returning blocks nobody else holds to the pool.
 */
public final class Sequence {
    private final PagedKvCache cache;
    private final int blockTokens;
    private final int[] table;
    private int blocks;
    private int length;

    public Sequence(PagedKvCache cache, int contextLength) {
        this.cache = cache;
        this.blockTokens = cache.layout().blockTokens();
        this.table = new int[(contextLength + blockTokens - 1) / blockTokens];
        Arrays.fill(table, PagedKvCache.NO_BLOCK);
    }

    /** The live block table; entries at and past {@link #blockCount()} are {@link PagedKvCache#NO_BLOCK}. */
    public int[] blockTable() {
        return table;
    }

    public int blockCount() {
        return blocks;
    }

    public int length() {
        return length;
    }

    public int blockTokens() {
        return blockTokens;
    }

    public int maxTokens() {
        return table.length * blockTokens;
    }

    /** Marks the first {@code tokens} positions as holding valid K/V. */
    public void setLength(int tokens) {
        if (tokens < 0 || tokens > blocks * blockTokens) {
            throw new IllegalArgumentException(
                    "length " + tokens + " not covered by " + blocks + " blocks of " + blockTokens);
        }
        this.length = tokens;
    }

    /**
     * Starts this (empty) sequence with full prefix blocks that already hold K/V, taking a reference
     * on each: the first {@code count} ids of {@code blockIds} cover tokens [0, count * blockTokens).
     */
    public void adoptPrefix(int[] blockIds, int count) {
        if (blocks != 0)
            throw new IllegalStateException("adoptPrefix needs an empty sequence, this one has " + blocks + " blocks");
        if (count > table.length)
            throw new IllegalArgumentException(
                    count + " prefix blocks exceed the context of " + table.length + " blocks");
        for (int i = 0; i < count; i++) {
            cache.retain(blockIds[i]);
            table[blocks++] = blockIds[i];
        }
        length = count * blockTokens;
    }

    /** Appends a block the caller allocated (reference count handed over to this sequence). */
    public void appendOwnedBlock(int id) {
        if (blocks == table.length)
            throw new IllegalStateException("sequence is at its context limit of " + table.length + " blocks");
        table[blocks++] = id;
    }

    /** Allocates blocks so positions [0, tokens) are covered; false when the pool ran out (nothing is lost:
     *  blocks got so far stay with the sequence until {@link #release()}). */
    public boolean reserve(int tokens) {
        if (tokens > maxTokens()) return false;
        int need = (tokens + blockTokens - 1) / blockTokens;
        while (blocks < need) {
            int id = cache.allocate();
            if (id == PagedKvCache.NO_BLOCK) return false;
            table[blocks++] = id;
        }
        return true;
    }

    /** Drops this sequence's reference on every block and empties it. Idempotent. */
    public void release() {
        for (int i = 0; i < blocks; i++) {
            cache.release(table[i]);
            table[i] = PagedKvCache.NO_BLOCK;
        }
        blocks = 0;
        length = 0;
    }
}
