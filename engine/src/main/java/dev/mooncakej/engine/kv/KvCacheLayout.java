package dev.mooncakej.engine.kv;

/**
 * Byte layout of the paged KV cache: one slab of {@code blocks} blocks, each holding the K and V of
 * {@code blockTokens} consecutive tokens for every layer, as little-endian float32.
 *
 * <pre>
 * slab:   | block 0 | block 1 | ... | block N-1 |                 block = layers x layerBytes
 * block:  | layer 0 | layer 1 | ... | layer L-1 |                 one layer of one block is ONE contiguous range
 * layer:  | K[t=0..B-1][kvHead][headDim] | V[t=0..B-1][kvHead][headDim] |
 *          offset of K(t, h) = (t * kvHeads + h) * headDim * 4
 *          offset of V(t, h) = B * kvHeads * headDim * 4 + (t * kvHeads + h) * headDim * 4
 * layerBytes = 2 * B * kvHeads * headDim * 4;   blockBytes = L * layerBytes
 * </pre>
 *
 * Because a layer of a block is contiguous, a prefill can hand each layer to the transfer engine as
 * soon as it is computed (layer-wise streaming), and a whole block is contiguous too.
 */
public record KvCacheLayout(int layers, int kvHeads, int headDim, int blockTokens) {
    public KvCacheLayout {
        if (layers < 1 || kvHeads < 1 || headDim < 1) {
            throw new IllegalArgumentException(
                    "layers, kvHeads and headDim must be positive: " + layers + ", " + kvHeads + ", " + headDim);
        }
        if (blockTokens < 1 || blockTokens > 4096) {
            throw new IllegalArgumentException("kv block size must be 1..4096 tokens, got " + blockTokens);
        }
    }

    /** Floats of K (or V) per token per layer. */
    public int kvDim() {
        return kvHeads * headDim;
    }

    public long layerBytes() {
        return 2L * blockTokens * kvDim() * Float.BYTES;
    }

    public long blockBytes() {
        return layers * layerBytes();
    }

    /** Offset of K of in-block token {@code t} within a layer range. */
    public long keyOffset(int t) {
        return (long) t * kvDim() * Float.BYTES;
    }

    /** Offset of V of in-block token {@code t} within a layer range. */
    public long valueOffset(int t) {
        return ((long) blockTokens + t) * kvDim() * Float.BYTES;
    }
}
