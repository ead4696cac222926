package dev.mooncakej.engine.spi;

import java.util.Arrays;

/**
 * One continuous-batching step: up to {@code capacity} sequences, each with the token to feed.
 * Preallocated and refilled every step; after {@link InferenceEngine#decode} row i's logits are at
 * {@code logits()[i * vocab ..]} and {@link #ok(int)} tells whether it ran (false: no KV block left).
 */
public final class DecodeBatch {
    private final int capacity;
    private final int vocab;
    private final Sequence[] sequences;
    private final int[] tokens;
    private final boolean[] ok;
    private final float[] logits;
    private int size;

    public DecodeBatch(int capacity, int vocab) {
        this.capacity = capacity;
        this.vocab = vocab;
        this.sequences = new Sequence[capacity];
        this.tokens = new int[capacity];
        this.ok = new boolean[capacity];
        this.logits = new float[capacity * vocab];
    }

    public void clear() {
        Arrays.fill(sequences, 0, size, null);
        size = 0;
    }

    /** Adds a sequence whose next input is {@code token}; returns its row. */
    public int add(Sequence seq, int token) {
        if (size == capacity) throw new IllegalStateException("decode batch is full (" + capacity + ")");
        sequences[size] = seq;
        tokens[size] = token;
        ok[size] = false;
        return size++;
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return capacity;
    }

    public int vocab() {
        return vocab;
    }

    public Sequence sequence(int row) {
        return sequences[row];
    }

    public int token(int row) {
        return tokens[row];
    }

    public boolean ok(int row) {
        return ok[row];
    }

    public void setOk(int row, boolean v) {
        ok[row] = v;
    }

    public float[] logits() {
        return logits;
    }

    public int logitsOffset(int row) {
        return row * vocab;
    }
}
