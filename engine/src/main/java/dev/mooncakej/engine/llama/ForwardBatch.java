package dev.mooncakej.engine.llama;

/**
 * The rows of one forward pass, preallocated and refilled per step: each row is one token of some
 * sequence at some position, with that sequence's block table. A prefill chunk is rows of one
 * sequence at consecutive positions; a decode step is one row per sequence. Rows marked
 * {@code wantLogits} get logits, in row order.
 */
public final class ForwardBatch {
    final int capacity;
    int size;
    final int[] tokens;
    final int[] positions;
    final int[][] tables;
    final boolean[] wantLogits;

    public ForwardBatch(int capacity) {
        this.capacity = capacity;
        this.tokens = new int[capacity];
        this.positions = new int[capacity];
        this.tables = new int[capacity][];
        this.wantLogits = new boolean[capacity];
    }

    public void clear() {
        for (int i = 0; i < size; i++) tables[i] = null;
        size = 0;
    }

    /** Adds a row; the block table must already cover {@code position}. */
    public void add(int token, int position, int[] blockTable, boolean logits) {
        if (size == capacity) throw new IllegalStateException("forward batch is full (" + capacity + " rows)");
        tokens[size] = token;
        positions[size] = position;
        tables[size] = blockTable;
        wantLogits[size] = logits;
        size++;
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return capacity;
    }

    public int logitRows() {
        int n = 0;
        for (int i = 0; i < size; i++) if (wantLogits[i]) n++;
        return n;
    }
}
