package dev.mooncakej.engine.spi;

/**
 * How to run a prefill.
 *
 * @param chunkTokens   tokens per forward pass (chunked prefill); at most the engine's batch rows
 * @param layers        told after each layer of each chunk (layer-wise KV streaming)
 * @param allLogits     when not null, receives the logits of every computed position (teacher forcing)
 */
public record PrefillOptions(int chunkTokens, ChunkLayerListener layers, LogitsSink allLogits) {
    public static final PrefillOptions DEFAULT = new PrefillOptions(256, null, null);

    public PrefillOptions {
        if (chunkTokens < 1)
            throw new IllegalArgumentException("prefill chunk size must be >= 1 token, got " + chunkTokens);
    }

    public static PrefillOptions chunked(int chunkTokens) {
        return new PrefillOptions(chunkTokens, null, null);
    }

    public PrefillOptions withLayers(ChunkLayerListener l) {
        return new PrefillOptions(chunkTokens, l, allLogits);
    }

    public PrefillOptions withAllLogits(LogitsSink s) {
        return new PrefillOptions(chunkTokens, layers, s);
    }

    /** After layer {@code layer} of the chunk covering positions [from, to), whose K/V is now stored. */
    @FunctionalInterface
    public interface ChunkLayerListener {
        void onLayer(int from, int to, int layer);
    }

    /** Logits of position {@code position} at {@code logits[offset .. offset + vocab)}. */
    @FunctionalInterface
    public interface LogitsSink {
        void accept(int position, float[] logits, int offset);
    }
}
